"""A deterministic synthetic tenant, streamed into the emulator's SQLite store.

Every account is generated from its own seeded RNG, so the data depends only on (scale, seed,
anchor) and memory stays bounded by one account's records plus a batch buffer, whatever the scale.
Documents are numbered afterwards in created order, as Zuora numbers them.
"""

from __future__ import annotations

import calendar
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from operator import itemgetter

from .schema import OBJECTS

# Accounts per scale; invoice items come to about 22 per account (large: over 1M items).
SCALES = {"tiny": 12, "small": 120, "medium": 5_000, "large": 50_000}
# A tenant sized by its account count instead of a named scale is the scale "accounts-<N>"
# (the CLI's --accounts N): benches size tenants by invoice items (10k, 100k, 1M), which no named
# scale hits.
ACCOUNTS_PREFIX = "accounts-"
HISTORY_MONTHS = 18
# Bill runs post a whole scale's invoices within a few seconds, so that many records share one
# updatedDate second (more than a 99-record page at every scale but tiny).
BILL_RUN_SECONDS = {"tiny": 1, "small": 1, "medium": 20, "large": 120}


def sized_scale(accounts: int) -> str:
    """The scale name of a tenant with this many accounts (about 22 invoice items each)."""
    if accounts < 1:
        raise ValueError("a tenant needs at least one account")
    return f"{ACCOUNTS_PREFIX}{accounts}"


def scale_accounts(scale: str) -> int:
    """Accounts of a named scale or of an `accounts-<N>` scale; ValueError for anything else."""
    if scale in SCALES:
        return SCALES[scale]
    if scale.startswith(ACCOUNTS_PREFIX) and scale[len(ACCOUNTS_PREFIX) :].isdigit():
        accounts = int(scale[len(ACCOUNTS_PREFIX) :])
        if accounts >= 1:
            return accounts
    raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)} or {ACCOUNTS_PREFIX}<N>")


def bill_run_seconds(scale: str) -> int:
    """A named scale's bill-run spread; a sized tenant's is interpolated between the named ones."""
    if scale in BILL_RUN_SECONDS:
        return BILL_RUN_SECONDS[scale]
    accounts = scale_accounts(scale)
    points = sorted((SCALES[name], seconds) for name, seconds in BILL_RUN_SECONDS.items())
    for (a0, s0), (a1, s1) in pairwise(points):
        if accounts <= a1:
            return max(1, round(s0 + (s1 - s0) * max(0, accounts - a0) / (a1 - a0)))
    (a0, s0), (a1, s1) = points[-2], points[-1]
    return max(1, round(s1 + (s1 - s0) * (accounts - a1) / (a1 - a0)))


FLUSH_ROWS = 5_000  # rows buffered per table before an executemany; bounds generator memory

COMPANY_WORDS = [
    "Müller",
    "Société",
    "Łódź",
    "Ørsted",
    "São Paulo",
    "Zürich",
    "Café",
    "Nordström",
    "Ångström",
    "Kraków",
    "Peña",
    "Dvořák",
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "株式会社",
    "Þór",
    "Ñandú",
    "Größe",
    "Bjørk",
    "Çelik",
    "Żuraw",
    "Šťastný",
    "Ólafur",
    "Élan",
]
COMPANY_SUFFIX = [
    "GmbH",
    "S.A.",
    "Ltd",
    "Inc.",
    "AB",
    "Sp. z o.o.",
    "K.K.",
    "SAS",
    "LLC",
    "Oy",
]
FIRST = [
    "José",
    "Zoë",
    "Björn",
    "François",
    "Łukasz",
    "Søren",
    "Anaïs",
    "Miguel",
    "Chloé",
    "Jürgen",
    "Ana",
    "Li",
    "Ngozi",
    "Aarav",
    "Émile",
    "Ines",
    "Mateus",
    "Yuki",
    "Olga",
    "Sean",
]
LAST = [
    "Núñez",
    "Øberg",
    "Kowalski",
    "Dubois",
    "Schäfer",
    "O'Brien",
    "Åkesson",
    "Gómez",
    "Smith",
    "Tanaka",
    "Novák",
    "Silva",
    "Müller",
    "Ivanović",
    "Chen",
    "García",
    "Ørsted",
    "Lefèvre",
]
PLACES = [
    ("Berlin", "BE", "Germany", "EUR", 0.19),
    ("Paris", "IDF", "France", "EUR", 0.20),
    ("London", "LDN", "United Kingdom", "GBP", 0.20),
    ("San José", "CA", "United States", "USD", 0.0725),
    ("New York", "NY", "United States", "USD", 0.08875),
    ("Kraków", "MA", "Poland", "EUR", 0.23),
    ("São Paulo", "SP", "Brazil", "USD", 0.0),
    ("Zürich", "ZH", "Switzerland", "EUR", 0.081),
    ("Austin", "TX", "United States", "USD", 0.0825),
    ("Tokyo", "13", "Japan", "USD", 0.10),
]
PRODUCTS = [
    (
        "Platform Édition Pro",
        "SKU-PLAT-PRO",
        "Base Products",
        "License",
        "FlatFee",
        1200.0,
    ),
    ("Platform Starter", "SKU-PLAT-STD", "Base Products", "License", "FlatFee", 299.0),
    ("Seats", "SKU-SEAT", "Add On Services", "Seat", "PerUnit", 35.0),
    ("Storage (GB)", "SKU-STOR", "Add On Services", "GB", "Tiered", 0.25),
    ("API Calls (k)", "SKU-API", "Add On Services", "Each", "Tiered", 0.8),
    ("Premium Support", "SKU-SUPP", "Services", "Each", "FlatFee", 450.0),
    ("Onboarding", "SKU-ONB", "Services", "Each", "OneTime", 1500.0),
    ("Données Analytics", "SKU-ANLY", "Add On Services", "Each", "PerUnit", 12.5),
]


@dataclass
class Writer:
    """Buffers rows per table and writes them in batches.

    Tables carry every field of Zuora's SDK (up to 131 columns) but the generator fills a few:
    an INSERT names only the columns a record sets (keys starting with `_` are the generator's
    own), so the rest stay NULL without costing a bound parameter each. Rows are buffered per
    (object, column list); the generator builds each object's records alike, so the buffers stay few.
    """

    conn: sqlite3.Connection

    def __post_init__(self) -> None:
        self.buffers: dict[tuple[str, tuple[str, ...]], list[tuple]] = {}
        self.counts = dict.fromkeys(OBJECTS, 0)
        # (object, the record's keys) -> (buffer key, getter of the row); records of one object
        # mostly share their keys, so this costs one tuple hash per record.
        self._shapes: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, tuple[str, ...]], Callable]] = {}

    def add(self, obj: str, rec: dict) -> None:
        shape = self._shapes.get((obj, tuple(rec)))
        if shape is None:
            shape = self._shape(obj, tuple(rec))
        key, getter = shape
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = []
        buf.append(getter(rec))
        if len(buf) >= FLUSH_ROWS:
            self._write(key)

    def _shape(self, obj: str, keys: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], Callable]:
        known = OBJECTS[obj].types
        unknown = [k for k in keys if k not in known and not k.startswith("_")]
        if unknown:
            raise KeyError(f"not fields of Zuora's {obj}: {unknown}")
        cols = tuple(k for k in keys if k in known)
        getter = itemgetter(*cols) if len(cols) > 1 else (lambda rec, c=cols[0]: (rec[c],))
        shape = self._shapes[(obj, keys)] = ((obj, cols), getter)
        return shape

    def _write(self, key: tuple[str, tuple[str, ...]]) -> None:
        obj, cols = key
        rows = self.buffers.pop(key, None)
        if rows:
            self.conn.executemany(
                f"INSERT INTO {OBJECTS[obj].table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                rows,
            )
            self.counts[obj] += len(rows)

    def flush(self) -> None:
        for key in list(self.buffers):
            self._write(key)


def _month_start(d: date, add: int = 0) -> date:
    y, m = divmod(d.month - 1 + add, 12)
    return date(d.year + y, m + 1, 1)


def _month_end(d: date) -> date:
    return date(d.year, d.month, calendar.monthrange(d.year, d.month)[1])


def _epoch(d: date | datetime, seconds: int = 0) -> int:
    if not isinstance(d, datetime):
        d = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return int(d.timestamp()) + seconds


def _day(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


class TenantGenerator:
    """Generates one tenant; `run()` writes it and returns the row count per object."""

    def __init__(self, conn: sqlite3.Connection, scale: str, seed: int, anchor: date) -> None:
        self.accounts = scale_accounts(scale)  # ValueError for an unknown scale
        self.conn, self.scale, self.seed = conn, scale, seed
        self.anchor = anchor
        self.anchor_epoch = _epoch(anchor)
        self.start = _month_start(anchor, -HISTORY_MONTHS)
        self.w = Writer(conn)
        self.spread = bill_run_seconds(scale)

    def _id(self, rng: random.Random) -> str:
        return f"8a{rng.getrandbits(120):030x}"

    def run(self) -> dict[str, int]:
        rng = random.Random(self.seed)
        self.products = []
        t0 = _epoch(self.start, -30 * 86400)
        for name, sku, category, uom, model, price in PRODUCTS:
            pid = self._id(rng)
            self.products.append((pid, name, sku, uom, model, price))
            self.w.add(
                "products",
                {
                    "id": pid,
                    "createdDate": t0,
                    "updatedDate": t0,
                    "name": name,
                    "sKU": sku,
                    "category": category,
                    "description": f"{name} ({model})",
                    "effectiveStartDate": _day(t0),
                    "effectiveEndDate": "2099-12-31",
                },
            )
        for i in range(self.accounts):
            self._account(random.Random(self.seed * 1_000_003 + i), i)
        self.w.flush()
        self._number()
        self.conn.commit()
        return dict(self.w.counts)

    def _number(self) -> None:
        """Zuora numbers documents in the order it creates them."""
        for obj, col, fmt in [
            ("accounts", "accountNumber", "'A' || printf('%08d', rn)"),
            ("subscriptions", "name", "'A-S' || printf('%08d', rn)"),
            ("orders", "orderNumber", "'O-' || printf('%08d', rn)"),
            ("rate-plan-charges", "chargeNumber", "'C-' || printf('%08d', rn)"),
            ("invoices", "invoiceNumber", "'INV' || printf('%08d', rn)"),
            ("payments", "paymentNumber", "'P-' || printf('%08d', rn)"),
            ("refunds", "refundNumber", "'R-' || printf('%08d', rn)"),
            ("credit-memos", "memoNumber", "'CM' || printf('%08d', rn)"),
            ("debit-memos", "memoNumber", "'DM' || printf('%08d', rn)"),
        ]:
            t = OBJECTS[obj].table
            self.conn.execute(
                f"UPDATE {t} SET {col} = {fmt} FROM (SELECT id AS rid, row_number() OVER "
                f"(ORDER BY createdDate, id) AS rn FROM {t}) WHERE {t}.id = rid"
            )

    # One account and everything that hangs off it.
    def _account(self, rng: random.Random, index: int) -> None:
        w, anchor = self.w, self.anchor_epoch
        span = (self.anchor - self.start).days - 45
        created = _epoch(self.start, rng.randrange(span * 86400))
        acc_id = self._id(rng)
        city, state, country, currency, tax_rate = rng.choice(PLACES)
        contacts = []
        for _ in range(1 if rng.random() < 0.6 else 2):
            cid = self._id(rng)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            c_updated = created if rng.random() < 0.7 else min(anchor - 1, created + rng.randrange(200 * 86400))
            contacts.append(cid)
            w.add(
                "contacts",
                {
                    "id": cid,
                    "createdDate": created,
                    "updatedDate": c_updated,
                    "accountId": acc_id,
                    "firstName": first,
                    "lastName": last,
                    "workEmail": f"{first.lower()}.{last.lower()}{index}@example.com".replace("'", ""),
                    "city": city,
                    "state": state,
                    "country": country,
                },
            )
        account = {
            "id": acc_id,
            "createdDate": created,
            "updatedDate": created,
            "name": f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_SUFFIX)}",
            "status": "Active",
            "currency": currency,
            "billCycleDay": 1,
            "paymentTerm": rng.choice(["Due Upon Receipt", "Net 30", "Net 45"]),
            "autoPay": rng.random() < 0.5,
            "batch": f"Batch{rng.randint(1, 5)}",
            "billToId": contacts[0],
            "soldToId": contacts[-1],
            "crmAccountId__c": f"001{rng.getrandbits(60):015X}" if rng.random() < 0.9 else None,
            "erpAccountId__c": f"C{rng.randrange(10**6):06d}" if rng.random() < 0.8 else None,
        }
        last_touch = created
        mrr_total = 0.0
        charges_all: list[dict] = []
        for _ in range(1 if rng.random() < 0.7 else 2):
            sub_created = created + rng.randrange(10 * 86400)
            charges, mrr = self._subscription(rng, acc_id, contacts[0], sub_created)
            charges_all.extend(charges)
            mrr_total += mrr
        balance, last_invoice, touch = self._invoices(rng, account, charges_all, tax_rate)
        last_touch = max(last_touch, touch)
        for ch in charges_all:
            billed = self._billed.get(ch["id"])
            if billed and ch["chargeType"] == "Recurring":
                ch["chargedThroughDate"] = _month_start(date.fromisoformat(billed), 1).isoformat()
            w.add("rate-plan-charges", ch)
        account.update(
            balance=round(balance, 2),
            creditBalance=0.0,
            mrr=round(mrr_total, 2),
            lastInvoiceDate=last_invoice,
            updatedDate=last_touch,
        )
        if rng.random() < 0.03:
            account["status"] = "Canceled"
        w.add("accounts", account)

    def _subscription(self, rng: random.Random, acc_id: str, bill_to: str, created: int) -> tuple[list[dict], float]:
        w = self.w
        sub_id = self._id(rng)
        start = datetime.fromtimestamp(created, UTC).date()
        cancelled = rng.random() < 0.1
        term_end = _month_start(start, 12)
        sub = {
            "id": sub_id,
            "createdDate": created,
            "updatedDate": created,
            "accountId": acc_id,
            "invoiceOwnerId": acc_id,
            "originalId": sub_id,
            "status": "Active",
            "version": 1,
            "termType": rng.choice(["TERMED", "TERMED", "EVERGREEN"]),
            "termStartDate": start.isoformat(),
            "termEndDate": term_end.isoformat(),
            "autoRenew": rng.random() < 0.8,
        }
        order_id = self._id(rng)
        w.add(
            "orders",
            {
                "id": order_id,
                "createdDate": created,
                "updatedDate": created,
                "orderDate": start.isoformat(),
                "status": "Completed",
                "accountId": acc_id,
                "description": "New subscription",
            },
        )
        w.add(
            "order-actions",
            {
                "id": self._id(rng),
                "createdDate": created,
                "updatedDate": created,
                "orderId": order_id,
                "subscriptionId": sub_id,
                "type": "CreateSubscription",
                "sequence": 0,
            },
        )
        charges, mrr_total = [], 0.0
        for _ in range(rng.randint(1, 2)):
            pid, pname, sku, uom, model, price = rng.choice(self.products)
            rp_id = self._id(rng)
            w.add(
                "rate-plans",
                {
                    "id": rp_id,
                    "createdDate": created,
                    "updatedDate": created,
                    "subscriptionId": sub_id,
                    "name": pname,
                    "productRatePlanId": pid,
                },
            )
            for k in range(rng.randint(1, 2)):
                one_time = model == "OneTime" or (k == 1 and rng.random() < 0.3)
                qty = float(rng.choice([1, 1, 5, 10, 25, 100])) if model in ("PerUnit", "Tiered") else 1.0
                unit = round(price * rng.uniform(0.8, 1.2), 2)
                mrr = 0.0 if one_time else round(unit * qty, 2)
                ch = {
                    "id": self._id(rng),
                    "createdDate": created,
                    "updatedDate": created,
                    "ratePlanId": rp_id,
                    "subscriptionId": sub_id,
                    "name": pname if k == 0 else f"{pname} Setup",
                    "chargeType": "OneTime" if one_time else "Recurring",
                    "chargeModel": "FlatFee" if model == "OneTime" else model,
                    "billingPeriod": None if one_time else "Month",
                    "effectiveStartDate": start.isoformat(),
                    "effectiveEndDate": None,
                    "mRR": mrr,
                    "tCV": round(mrr * 12 if not one_time else unit * qty, 2),
                    "_price": unit,  # Zuora keeps prices on the tiers, not the charge
                    "quantity": qty,
                    "uOM": uom,
                    "accountingCode": f"4{rng.randint(0, 9)}00-Revenue",
                    "_sku": sku,
                }
                charges.append(ch)
                mrr_total += mrr
                if model == "Tiered":
                    lo = 0.0
                    for tier, hi in enumerate([100.0, 1000.0, None], start=1):
                        w.add(
                            "rate-plan-charge-tiers",
                            {
                                "id": self._id(rng),
                                "createdDate": created,
                                "updatedDate": created,
                                "ratePlanChargeId": ch["id"],
                                "tier": tier,
                                "startingUnit": lo,
                                "endingUnit": hi,
                                "price": round(unit / tier, 4),
                                "priceFormat": "Per Unit",
                            },
                        )
                        lo = (hi or 0.0) + 1
                if one_time and rng.random() < 0.5:
                    w.add(
                        "order-line-items",
                        {
                            "id": self._id(rng),
                            "createdDate": created,
                            "updatedDate": created,
                            "orderId": order_id,
                            "itemNumber": str(k + 1),
                            "itemName": ch["name"],
                            "itemState": rng.choice(["Executing", "SentToBilling", "Complete"]),
                            "itemType": "Product",
                            "amount": round(unit * qty, 2),
                            "quantity": qty,
                            "listPrice": price,
                            "billToId": bill_to,
                        },
                    )
        if cancelled:
            sub["status"] = "Cancelled"
            sub["updatedDate"] = min(self.anchor_epoch - 1, created + rng.randrange(30, 400) * 86400)
            sub["cancelled_on"] = sub["updatedDate"]
        elif rng.random() < 0.05:
            when = min(self.anchor_epoch - 1, created + rng.randrange(30, 300) * 86400)
            w.add(
                "amendments",
                {
                    "id": self._id(rng),
                    "createdDate": when,
                    "updatedDate": when,
                    "subscriptionId": sub_id,
                    "name": "Quantity update",
                    "type": "UpdateProduct",
                    "status": "Completed",
                    "effectiveDate": _day(when),
                    "code": f"A-AM{rng.randrange(10**8):08d}",
                },
            )
        sub["cMRR"] = 0.0 if cancelled else round(mrr_total, 2)
        for ch in charges:
            ch["_end"] = sub.get("cancelled_on")
        w.add("subscriptions", {k: v for k, v in sub.items() if k != "cancelled_on"})
        return charges, mrr_total

    def _invoices(self, rng: random.Random, account: dict, charges: list[dict], tax_rate: float):
        """Monthly invoices on the 1st from a bill run; payments, refunds and memos after them."""
        anchor = self.anchor_epoch
        balance, last_invoice, touch = 0.0, None, account["createdDate"]
        first_month = _month_start(
            datetime.fromtimestamp(min(c["createdDate"] for c in charges), UTC).date(),
            1,
        )
        month = first_month
        bill_offset = 8 * 3600 + rng.randrange(self.spread)  # the bill run starts at 08:00 UTC
        charge_billed: dict[str, str] = {}
        self._billed = charge_billed
        while _epoch(month) < anchor:
            lines = []
            for ch in charges:
                started = ch["createdDate"] < _epoch(month)
                ended = ch["_end"] is not None and ch["_end"] < _epoch(month)
                if not started or ended:
                    continue
                if ch["chargeType"] == "OneTime":
                    if ch["id"] in charge_billed:
                        continue
                elif ch["mRR"] == 0:
                    continue
                lines.append(ch)
            if lines:
                inv_time = _epoch(month, bill_offset)
                last_invoice = month.isoformat()
                balance += self._invoice(rng, account, lines, month, inv_time, tax_rate, charge_billed)
                touch = max(touch, self._last_touch)
            month = _month_start(month, 1)
        return balance, last_invoice, touch

    def _invoice(self, rng, account, lines, month: date, inv_time: int, tax_rate: float, billed) -> float:
        w, anchor = self.w, self.anchor_epoch
        inv_id = self._id(rng)
        items, total_wo_tax, total_tax = [], 0.0, 0.0
        for ch in lines:
            amount = round(ch["_price"] * ch["quantity"], 2)
            tax = round(amount * tax_rate, 2)
            total_wo_tax += amount
            total_tax += tax
            billed[ch["id"]] = month.isoformat()
            recurring = ch["chargeType"] == "Recurring"
            item = {
                "id": self._id(rng),
                "createdDate": inv_time,
                "updatedDate": inv_time,
                "invoiceId": inv_id,
                "accountId": account["id"],
                "subscriptionId": ch["subscriptionId"],
                "ratePlanChargeId": ch["id"],
                "chargeName": ch["name"],
                "sKU": ch["_sku"],
                "uOM": ch["uOM"],
                "chargeAmount": amount,
                "taxAmount": tax,
                "unitPrice": ch["_price"],
                "quantity": ch["quantity"],
                "balance": round(amount + tax, 2),
                "serviceStartDate": month.isoformat(),
                "serviceEndDate": _month_end(month).isoformat() if recurring else month.isoformat(),
                "accountingCode": ch["accountingCode"],
            }
            items.append(item)
        amount = round(total_wo_tax + total_tax, 2)
        status = "Posted"
        if _epoch(_month_start(month, 1)) >= anchor and rng.random() < 0.3:
            status = "Draft"
        elif rng.random() < 0.02:
            status = "Canceled"
        due = month + timedelta(days=30)
        inv = {
            "id": inv_id,
            "createdDate": inv_time,
            "updatedDate": inv_time,
            "accountId": account["id"],
            "billToContactId": account["billToId"],
            "status": status,
            "invoiceDate": month.isoformat(),
            "dueDate": due.isoformat(),
            "postedDate": inv_time if status == "Posted" else None,  # a datetime: the bill run posts
            "currency": account["currency"],
            "amount": amount,
            "amountWithoutTax": round(total_wo_tax, 2),
            "taxAmount": round(total_tax, 2),
            "balance": amount,
            "paymentAmount": 0.0,
            "creditMemoAmount": 0.0,
            "refundAmount": 0.0,
            "transferredToAccounting": "No",
        }
        self._last_touch = inv_time
        if status == "Posted":
            self._settle(rng, account, inv, items)
        for item in items:
            if status == "Canceled" or inv["balance"] == 0:
                item["balance"] = 0.0
            w.add("invoice-items", item)
        w.add("invoices", inv)
        return inv["balance"] if status == "Posted" else 0.0

    def _settle(self, rng, account, inv, items) -> None:
        """Payments, refunds and memos against a posted invoice, as far as the anchor allows."""
        w, anchor = self.w, self.anchor_epoch
        if rng.random() < 0.88:
            paid_at = inv["createdDate"] + rng.randrange(1, 20) * 86400 + rng.randrange(86400)
            if paid_at < anchor:
                status = rng.choices(["Processed", "Error", "Canceled"], [95, 3, 2])[0]
                pay = {
                    "id": self._id(rng),
                    "createdDate": paid_at,
                    "updatedDate": paid_at,
                    "accountId": account["id"],
                    "status": status,
                    "effectiveDate": _day(paid_at),
                    "currency": inv["currency"],
                    "type": rng.choice(["Electronic", "External"]),
                    "amount": inv["amount"],
                    "appliedAmount": inv["amount"] if status == "Processed" else 0.0,
                    "unappliedAmount": 0.0,
                    "refundAmount": 0.0,
                    "transferredToAccounting": "No",
                }
                if status == "Processed":
                    inv.update(balance=0.0, paymentAmount=inv["amount"], updatedDate=paid_at)
                    self._last_touch = max(self._last_touch, paid_at)
                    if rng.random() < 0.02:
                        ref_at = paid_at + rng.randrange(3, 30) * 86400
                        if ref_at < anchor:
                            ref_amount = round(inv["amount"] * rng.choice([1.0, 0.5, 0.25]), 2)
                            ref_status = "Processed" if rng.random() < 0.9 else "Canceled"
                            w.add(
                                "refunds",
                                {
                                    "id": self._id(rng),
                                    "createdDate": ref_at,
                                    "updatedDate": ref_at,
                                    "accountId": account["id"],
                                    "status": ref_status,
                                    "refundDate": _day(ref_at),
                                    "type": "Electronic",
                                    "reasonCode": rng.choice(["Standard Refund", "Customer Satisfaction"]),
                                    "amount": ref_amount,
                                    "transferredToAccounting": "No",
                                },
                            )
                            if ref_status == "Processed":
                                pay.update(refundAmount=ref_amount, updatedDate=ref_at)
                                self._last_touch = max(self._last_touch, ref_at)
                w.add("payments", pay)
        for obj, item_obj, fk, share in (
            ("credit-memos", "credit-memo-items", "creditMemoId", 0.03),
            ("debit-memos", "debit-memo-items", "debitMemoId", 0.01),
        ):
            if rng.random() >= share:
                continue
            at = inv["createdDate"] + rng.randrange(2, 40) * 86400 + rng.randrange(86400)
            if at >= anchor:
                continue
            memo_id = self._id(rng)
            memo_items, total, tax_total = [], 0.0, 0.0
            for item in rng.sample(items, k=min(len(items), rng.randint(1, 2))):
                amount = round(item["chargeAmount"] * rng.choice([1.0, 0.5, 0.1]), 2)
                tax = round(item["taxAmount"] * amount / item["chargeAmount"], 2) if item["chargeAmount"] else 0.0
                total += amount
                tax_total += tax
                memo_items.append(
                    {
                        "id": self._id(rng),
                        "createdDate": at,
                        "updatedDate": at,
                        fk: memo_id,
                        "invoiceItemId": item["id"],
                        "chargeName": item["chargeName"],
                        "sku": item["sKU"],
                        "unitOfMeasure": item["uOM"],
                        "amount": amount,
                        "taxAmount": tax,
                        "unitPrice": item["unitPrice"],
                        "quantity": item["quantity"],
                        "serviceStartDate": item["serviceStartDate"],
                        "serviceEndDate": item["serviceEndDate"],
                    }
                )
            status = "Posted" if rng.random() < 0.8 else "Draft"
            total_amount = round(total + tax_total, 2)
            w.add(
                obj,
                {
                    "id": memo_id,
                    "createdDate": at,
                    "updatedDate": at,
                    "accountId": account["id"],
                    "invoiceId": inv["id"],
                    "status": status,
                    "memoDate": _day(at),
                    "postedOn": at if status == "Posted" else None,
                    "currency": inv["currency"],
                    "totalAmount": total_amount,
                    "taxAmount": round(tax_total, 2),
                    "balance": total_amount,
                    "reasonCode": "Correcting invoice error" if obj == "credit-memos" else "Charge Dispute",
                    "transferredToAccounting": "No",
                },
            )
            for mi in memo_items:
                w.add(item_obj, mi)
