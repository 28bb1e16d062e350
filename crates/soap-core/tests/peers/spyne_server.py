"""A spyne 2.14 (PyPI) server for soap-core's client: an inventory service with a SOAP 1.1
application on /soap11 and a SOAP 1.2 application on /soap12, each serving its WSDL at ?wsdl.

Operations (namespace urn:peer:inventory, document/literal wrapped):
- getStock(sku) -> (sku, available); an unknown SKU raises a client fault with a detail.
- restock(sku, quantities[]) -> total, summing an array.

Usage: spyne_server.py   (prints "listening on http://127.0.0.1:PORT" once ready)
"""

import logging
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from lxml import etree
from spyne import Application, ComplexModel, Integer, Iterable, Fault, Unicode, rpc, ServiceBase
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication

TNS = "urn:peer:inventory"
STOCK = {"A-1": 25, "B-2": 3}


class Stock(ComplexModel):
    __namespace__ = TNS
    sku = Unicode
    available = Integer


class Inventory(ServiceBase):
    @rpc(Unicode, _returns=Stock, _body_style="wrapped")
    def getStock(ctx, sku):
        if sku not in STOCK:
            # spyne's SOAP 1.1 writer takes an element as detail, its SOAP 1.2 writer a dict.
            if isinstance(ctx.out_protocol, Soap12):
                detail = {"unknownSku": {"sku": sku}}
            else:
                detail = etree.Element("{%s}unknownSku" % TNS)
                etree.SubElement(detail, "{%s}sku" % TNS).text = sku
            raise Fault(faultcode="Client.UnknownSku", faultstring="unknown SKU %s" % sku, detail=detail)
        return Stock(sku=sku, available=STOCK[sku])

    @rpc(Unicode, Iterable(Integer), _returns=Integer)
    def restock(ctx, sku, quantities):
        return sum(quantities or [])


def app(protocol):
    return WsgiApplication(Application([Inventory], TNS, name="Inventory", in_protocol=protocol(validator="lxml"), out_protocol=protocol()))


apps = {"/soap11": app(Soap11), "/soap12": app(Soap12)}


def dispatch(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path in apps:
        return apps[path](environ, start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


logging.basicConfig(level=logging.CRITICAL)
server = make_server("127.0.0.1", 0, dispatch, handler_class=Quiet)
print("listening on http://127.0.0.1:%d" % server.server_port, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
