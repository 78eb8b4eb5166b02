"""The Zuora objects in scope: Object Query endpoint, the fields worth syncing and their types.

This is *what* can be extracted; families choose among these objects and mappings choose among
these fields. Types drive staging (every field is staged as text) and mapping validation.
"""

from __future__ import annotations

from dataclasses import dataclass

STRING, INTEGER, NUMBER, DECIMAL, BOOLEAN, DATE, DATETIME = (
    "string",
    "integer",
    "number",
    "decimal",
    "boolean",
    "date",
    "datetime",
)
_S, _I, _M, _B, _D, _T = STRING, INTEGER, DECIMAL, BOOLEAN, DATE, DATETIME


@dataclass(frozen=True)
class ZuoraObject:
    name: str  # snake_case, as in DAG lists, Variables and default table names
    endpoint: str  # kebab-case, as in /object-query/{endpoint}
    fields: dict[str, str]  # Zuora field name -> type
    filter_required: bool = False  # Zuora refuses a request without any filter[]
    action_type: str | None = None  # POST /v1/action/update type, for TransferredToAccounting
    memo_path: str | None = None  # PUT /v1/{memo_path}/{id}, for memos' transferredToAccounting


def _obj(name: str, fields: dict[str, str], **kw) -> ZuoraObject:
    base = {"id": _S, "createdDate": _T, "updatedDate": _T}
    return ZuoraObject(name=name, endpoint=name.replace("_", "-"), fields={**base, **fields}, **kw)


_MEMO = {
    "accountId": _S, "invoiceId": _S, "memoNumber": _S, "status": _S, "memoDate": _D, "currency": _S,
    "totalAmount": _M, "taxAmount": _M, "balance": _M, "reasonCode": _S, "transferredToAccounting": _S,
}  # fmt: skip
_MEMO_ITEM = {
    "invoiceItemId": _S, "chargeName": _S, "sku": _S, "unitOfMeasure": _S, "amount": _M, "taxAmount": _M,
    "unitPrice": _M, "quantity": _M, "serviceStartDate": _D, "serviceEndDate": _D,
}  # fmt: skip

OBJECTS: dict[str, ZuoraObject] = {
    o.name: o
    for o in [
        _obj("accounts", {
            "accountNumber": _S, "name": _S, "status": _S, "currency": _S, "billCycleDay": _I, "paymentTerm": _S,
            "autoPay": _B, "batch": _S, "balance": _M, "creditBalance": _M, "mrr": _M, "lastInvoiceDate": _D,
            "parentId": _S, "billToId": _S, "soldToId": _S, "crmAccountId__c": _S, "erpAccountId__c": _S,
        }),
        _obj("contacts", {
            "accountId": _S, "firstName": _S, "lastName": _S, "workEmail": _S, "city": _S, "state": _S,
            "country": _S,
        }),
        _obj("subscriptions", {
            "accountId": _S, "invoiceOwnerId": _S, "originalId": _S, "name": _S, "status": _S, "version": _I,
            "termType": _S, "termStartDate": _D, "termEndDate": _D, "autoRenew": _B, "cMRR": _M,
        }),
        _obj("rate_plans", {"subscriptionId": _S, "name": _S, "productRatePlanId": _S}),
        _obj("rate_plan_charges", {
            "ratePlanId": _S, "subscriptionId": _S, "name": _S, "chargeNumber": _S, "chargeType": _S,
            "chargeModel": _S, "billingPeriod": _S, "effectiveStartDate": _D, "effectiveEndDate": _D,
            "chargedThroughDate": _D, "mRR": _M, "tCV": _M, "price": _M, "quantity": _M, "uOM": _S,
            "accountingCode": _S,
        }, filter_required=True),
        _obj("rate_plan_charge_tiers", {
            "ratePlanChargeId": _S, "tier": _I, "startingUnit": _M, "endingUnit": _M, "price": _M,
            "priceFormat": _S,
        }, filter_required=True),
        _obj("orders", {
            "orderNumber": _S, "orderDate": _D, "status": _S, "existingAccountId": _S, "description": _S,
        }),
        _obj("order_actions", {"orderId": _S, "subscriptionId": _S, "type": _S, "sequence": _I}),
        _obj("order_line_items", {
            "orderId": _S, "itemNumber": _S, "itemName": _S, "itemState": _S, "itemType": _S, "amount": _M,
            "quantity": _M, "listPrice": _M, "billTo": _S,
        }),
        _obj("invoices", {
            "accountId": _S, "billToContactId": _S, "invoiceNumber": _S, "status": _S, "invoiceDate": _D,
            "dueDate": _D, "postedDate": _D, "currency": _S, "amount": _M, "amountWithoutTax": _M,
            "taxAmount": _M, "balance": _M, "paymentAmount": _M, "creditMemoAmount": _M, "refundAmount": _M,
            "transferredToAccounting": _S,
        }, action_type="Invoice"),
        _obj("invoice_items", {
            "invoiceId": _S, "accountId": _S, "subscriptionId": _S, "ratePlanChargeId": _S, "chargeName": _S,
            "sKU": _S, "uOM": _S, "chargeAmount": _M, "taxAmount": _M, "unitPrice": _M, "quantity": _M,
            "balance": _M, "serviceStartDate": _D, "serviceEndDate": _D, "accountingCode": _S,
        }, filter_required=True),
        _obj("payments", {
            "accountId": _S, "paymentNumber": _S, "status": _S, "effectiveDate": _D, "currency": _S, "type": _S,
            "amount": _M, "appliedAmount": _M, "unappliedAmount": _M, "refundAmount": _M,
            "transferredToAccounting": _S,
        }, action_type="Payment"),
        _obj("refunds", {
            "accountId": _S, "paymentId": _S, "refundNumber": _S, "status": _S, "refundDate": _D, "type": _S,
            "reasonCode": _S, "amount": _M, "transferredToAccounting": _S,
        }, action_type="Refund"),
        _obj("credit_memos", _MEMO, memo_path="credit-memos"),
        _obj("credit_memo_items", {"creditMemoId": _S, **_MEMO_ITEM}),
        _obj("debit_memos", _MEMO, memo_path="debit-memos"),
        _obj("debit_memo_items", {"debitMemoId": _S, **_MEMO_ITEM}),
    ]
}  # fmt: skip


def get_object(name: str) -> ZuoraObject:
    try:
        return OBJECTS[name]
    except KeyError:
        raise ValueError(f"unknown Zuora object {name!r}; known: {', '.join(sorted(OBJECTS))}") from None
