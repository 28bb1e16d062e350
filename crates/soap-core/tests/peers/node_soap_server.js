// A node `soap` (npm) server for soap-core's client: the hand-written node_inventory.wsdl,
// served at /soap11 (SOAP 1.1) and /soap12 (SOAP 1.2, forceSoap12Headers) on one port, each
// with its WSDL at ?wsdl. getStock of an unknown SKU answers a fault with an unknownSku
// detail; restock sums the repeated quantity elements.
//
// Usage: NODE_PATH=$PEER_NODE_MODULES node node_soap_server.js
//        (prints "listening on http://127.0.0.1:PORT" once both paths serve)
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const soap = require('soap');

const STOCK = { 'A-1': 25, 'B-2': 3 };

function getStock(soap12) {
  return (args) => {
    const sku = args.sku;
    if (!(sku in STOCK)) {
      const detail = { 'tns:unknownSku': { 'tns:sku': sku } };
      if (soap12) {
        throw {
          Fault: {
            Code: { Value: 'soap:Sender', Subcode: { Value: 'tns:UnknownSku' } },
            Reason: { Text: 'unknown SKU ' + sku },
            Detail: detail,
            statusCode: 400,
          },
        };
      }
      throw { Fault: { faultcode: 'soap:Client', faultstring: 'unknown SKU ' + sku, detail, statusCode: 500 } };
    }
    return { sku, available: STOCK[sku] };
  };
}

function restock(args) {
  const quantities = [].concat(args.quantity || []);
  return { total: quantities.reduce((sum, q) => sum + Number(q), 0) };
}

const server = http.createServer((req, res) => {
  res.statusCode = 404;
  res.end('not found');
});

server.listen(0, '127.0.0.1', () => {
  const base = 'http://127.0.0.1:' + server.address().port;
  const xml = fs.readFileSync(path.join(__dirname, 'node_inventory.wsdl'), 'utf8').replace(/__BASE__/g, base);
  const services = {
    Inventory: {
      InventorySoap11: { getStock: getStock(false), restock },
      InventorySoap12: { getStock: getStock(true), restock },
    },
  };
  let ready = 0;
  const done = (err) => {
    if (err) {
      console.error(err);
      process.exit(1);
    }
    ready += 1;
    if (ready === 2) {
      console.log('listening on ' + base);
    }
  };
  soap.listen(server, { path: '/soap11', services, xml, callback: done });
  soap.listen(server, { path: '/soap12', services, xml, forceSoap12Headers: true, callback: done });
});
