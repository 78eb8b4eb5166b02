-- Sizing: payment records by created month since January of last year (ZUORA_API.md, "Data Query").
SELECT concat(format_datetime(createddate,'YYYY'),'-',format_datetime(createddate,'MM')) month, count(*)
FROM payment
WHERE year(current_date) - 1 <= year(createddate)
GROUP BY 1
ORDER BY 1
