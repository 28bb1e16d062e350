"""zeep (PyPI) as a real client of soap-service: loads the WSDL, calls every operation over
SOAP 1.1 and 1.2, reads typed results and faults, and uses WS-Security UsernameToken.

Usage: zeep_client.py BASE_URL PASSWORD
"""

import datetime
import sys

import zeep
from lxml import etree
from zeep.exceptions import Fault
from zeep.wsse.username import UsernameToken

base, password = sys.argv[1], sys.argv[2]
wsdl = base + "/soap?wsdl"
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit("FAILED: " + what)
    checks += 1


def fault_text(f):
    return " ".join(str(x) for x in (f.code, f.message, getattr(f, "subcodes", None)))


for binding in ("OrdersSoap11", "OrdersSoap12"):
    client = zeep.Client(wsdl)
    svc = client.bind("Orders", binding)

    stock = svc.getStock(sku="A-1")
    check(stock.sku == "A-1" and stock.available == 25, binding + " getStock")

    order = svc.placeOrder(customer="c-1", line=[{"sku": "A-1", "quantity": 2}, {"sku": "B-2", "quantity": 1}], note="ring twice")
    check(order.status == "Pending", binding + " status enum")
    check(order.tracking is None, binding + " nillable tracking")
    check(isinstance(order.placed, datetime.datetime), binding + " dateTime")
    check([l.sku for l in order.line] == ["A-1", "B-2"], binding + " array")
    check(order.note == "ring twice", binding + " optional note")

    try:
        svc.placeOrder(customer="c-1", line=[{"sku": "B-2", "quantity": 9}])
        check(False, binding + " out of stock must fault")
    except Fault as f:
        check("out of stock" in f.message, binding + " fault reason")
        detail = f.detail
        check(detail is not None, binding + " fault detail")
        text = etree.tostring(detail).decode()
        check("B-2" in text and "<" in text, binding + " detail carries the SKU")
        check("Client" in str(f.code) or "Sender" in str(f.code), binding + " sender code: " + str(f.code))

    try:
        svc.getStock(sku="nope")
        check(False, binding + " unknown SKU must fault")
    except Fault as f:
        check("unknown SKU" in f.message, binding + " unknown SKU fault")

    oid = order.id
    for digest in (False, True):
        secured = zeep.Client(wsdl, wsse=UsernameToken("demo", password, use_digest=digest)).bind("Orders", binding)
        cancelled = secured.cancelOrder(id=oid)
        check(cancelled.status == "Cancelled", binding + " cancel with token digest=%s" % digest)

    for digest in (False, True):
        bad = zeep.Client(wsdl, wsse=UsernameToken("demo", "wrong", use_digest=digest)).bind("Orders", binding)
        try:
            bad.cancelOrder(id=oid)
            check(False, binding + " wrong password must fault")
        except Fault as f:
            check("FailedAuthentication" in fault_text(f) or "authenticated" in f.message, binding + " wrong password: " + fault_text(f))

    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    nonce = "fixed-nonce-" + binding
    replay = zeep.Client(wsdl, wsse=UsernameToken("demo", password, use_digest=True, nonce=nonce, created=created)).bind("Orders", binding)
    replay.cancelOrder(id=oid)
    try:
        replay.cancelOrder(id=oid)
        check(False, binding + " replayed nonce must fault")
    except Fault as f:
        check("FailedAuthentication" in fault_text(f) or "authenticated" in f.message, binding + " replay: " + fault_text(f))

    try:
        zeep.Client(wsdl).bind("Orders", binding).cancelOrder(id=oid)
        check(False, binding + " no token must fault")
    except Fault as f:
        check("InvalidSecurity" in fault_text(f) or "Security" in f.message, binding + " no token: " + fault_text(f))

print("ok %d checks" % checks)
