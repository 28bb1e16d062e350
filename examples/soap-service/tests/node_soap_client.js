// node `soap` (npm) as a real client of soap-service: loads the WSDL with createClientAsync,
// calls every operation through the SOAP 1.1 port and, with forceSoap12Headers, the SOAP 1.2
// port; checks typed results, faults with detail, and WS-Security UsernameToken (text and
// digest, wrong password refused, no token refused).
//
// Usage: NODE_PATH=$PEER_NODE_MODULES node node_soap_client.js BASE_URL PASSWORD
'use strict';

const soap = require('soap');

const [base, password] = process.argv.slice(2);
const wsdl = base + '/soap?wsdl';
let checks = 0;

function check(cond, what) {
  if (!cond) {
    console.error('FAILED: ' + what);
    process.exit(1);
  }
  checks += 1;
}

// Calls `op` on a given port (the promisified client methods always use the last port).
function call(client, port, op, args) {
  return new Promise((resolve, reject) => {
    client.Orders[port][op](args, (err, result, raw) => (err ? reject(err) : resolve({ result, raw })));
  });
}

// The fault node soap read from the response body: `root.Envelope.Body.Fault`.
function faultOf(err) {
  const fault = err && err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
  if (!fault) {
    throw new Error('expected a SOAP fault, got: ' + (err && err.stack ? err.stack : JSON.stringify(err)));
  }
  return { fault, status: err.response && err.response.status };
}

async function expectFault(promise, what) {
  try {
    await promise;
  } catch (err) {
    return faultOf(err);
  }
  check(false, what + ' must fault');
  return null;
}

function text(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

async function run(port, soap12) {
  const options = soap12 ? { forceSoap12Headers: true } : {};
  const client = await soap.createClientAsync(wsdl, options);
  const described = client.describe();
  check(
    ['placeOrder', 'getStock', 'cancelOrder'].every((op) => op in described.Orders[port]),
    port + ' describe() lists every operation'
  );

  const stock = await call(client, port, 'getStock', { sku: 'A-1' });
  check(stock.result.sku === 'A-1' && Number(stock.result.available) === 25, port + ' getStock ' + text(stock.result));
  check(stock.raw.includes(soap12 ? 'http://www.w3.org/2003/05/soap-envelope' : 'http://schemas.xmlsoap.org/soap/envelope/'),
    port + ' answered in the request version');

  const placed = await call(client, port, 'placeOrder', {
    customer: 'c-1',
    line: [{ sku: 'A-1', quantity: 2 }, { sku: 'B-2', quantity: 1 }],
    note: 'ring twice',
  });
  const order = placed.result;
  check(order.status === 'Pending', port + ' status enum ' + text(order));
  // node soap reads an xsi:nil element as absent; the wire must say nil, not leave it out.
  check(order.tracking == null && /<tracking[^>]*nil="true"/.test(placed.raw), port + ' nillable tracking ' + text(order.tracking));
  check(order.placed instanceof Date && !isNaN(order.placed.getTime()), port + ' dateTime ' + text(order.placed));
  check(Array.isArray(order.line) && order.line.map((l) => l.sku).join(',') === 'A-1,B-2', port + ' array ' + text(order.line));
  check(Number(order.line[0].quantity) === 2, port + ' quantity');
  check(order.note === 'ring twice', port + ' optional note');

  const short = await expectFault(
    call(client, port, 'placeOrder', { customer: 'c-1', line: [{ sku: 'B-2', quantity: 9 }] }),
    port + ' out of stock'
  );
  if (soap12) {
    check(short.status === 400, port + ' Sender fault is 400, got ' + short.status);
    check(text(short.fault.Code.Value).includes('Sender'), port + ' Sender code ' + text(short.fault.Code));
    check(text(short.fault.Reason).includes('out of stock'), port + ' reason ' + text(short.fault.Reason));
    check(text(short.fault.Detail).includes('B-2'), port + ' detail carries the SKU ' + text(short.fault.Detail));
  } else {
    check(short.status === 500, port + ' 1.1 fault is 500, got ' + short.status);
    check(text(short.fault.faultcode).includes('Client'), port + ' Client code ' + text(short.fault.faultcode));
    check(text(short.fault.faultstring).includes('out of stock'), port + ' faultstring');
    check(text(short.fault.detail).includes('B-2') && text(short.fault.detail).includes('available'),
      port + ' detail carries the SKU ' + text(short.fault.detail));
  }

  const unknown = await expectFault(call(client, port, 'getStock', { sku: 'nope' }), port + ' unknown SKU');
  check(text(unknown.fault).includes('unknown SKU'), port + ' unknown SKU fault ' + text(unknown.fault));

  for (const passwordType of ['PasswordText', 'PasswordDigest']) {
    const secured = await soap.createClientAsync(wsdl, options);
    secured.setSecurity(new soap.WSSecurity('demo', password, { passwordType, mustUnderstand: true }));
    const cancelled = await call(secured, port, 'cancelOrder', { id: order.id });
    check(cancelled.result.status === 'Cancelled' && cancelled.result.id === order.id, port + ' cancel with ' + passwordType);

    const bad = await soap.createClientAsync(wsdl, options);
    bad.setSecurity(new soap.WSSecurity('demo', 'wrong', { passwordType }));
    const refused = await expectFault(call(bad, port, 'cancelOrder', { id: order.id }), port + ' wrong password ' + passwordType);
    check(text(refused.fault).includes('FailedAuthentication'), port + ' wrong password code ' + text(refused.fault));
  }

  const missing = await expectFault(call(client, port, 'cancelOrder', { id: order.id }), port + ' no token');
  check(text(missing.fault).includes('InvalidSecurity'), port + ' no token code ' + text(missing.fault));
}

(async () => {
  await run('OrdersSoap11', false);
  await run('OrdersSoap12', true);
  console.log('ok ' + checks + ' checks');
})().catch((err) => {
  console.error('FAILED: ' + (err && err.stack ? err.stack : err));
  process.exit(1);
});
