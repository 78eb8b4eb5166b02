# Astro Runtime 3.3 (Apache Airflow 3.3). On build the Astro CLI installs requirements.txt, which
# pins the providers this project adds to the image (http, sqlite, postgres, slack) and the exact
# versions it is tested with; the library lives in plugins/zuora_etl, the DAGs in dags/.
FROM astrocrpublic.azurecr.io/runtime:3.3-2

ENV AIRFLOW__CORE__LOAD_EXAMPLES=False
