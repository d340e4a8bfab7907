// The customers example (examples/customers/README.md) in JavaScript.
//
// `inventory.customers` change events to documents
// `{_id, name, email, balance: Decimal128, isVip}` in `customers`.
// Build: componentize-js customers.js --wit ../../../wit -n transform -d http -d fetch-event -o customers.wasm

// `balance` is numeric(10,2): its scale when the record carries no schema.
const BALANCE_SCALE = 2;
const NS = { collection: 'customers' };
const utf8 = new TextDecoder('utf-8', { fatal: true });
const MAX_DEPTH = 127; // as serde_json (the Rust implementation): all four agree

const fail = (kind, message) => ({ kind, message });
const badInput = (message) => fail('bad-input', message);
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

// Kafka Connect's JSON converter with schemas: [payload, schema]; without: [doc, undefined].
function unwrap(doc) {
  if (isObject(doc) && Object.keys(doc).length === 2 && 'schema' in doc && 'payload' in doc) {
    return [doc.payload, doc.schema];
  }
  return [doc, undefined];
}

function fieldSchema(schema, ...path) {
  for (const name of path) schema = (schema?.fields ?? []).find((f) => f.field === name);
  return schema;
}

// Connect Decimal: base64 of the unscaled big-endian two's-complement integer.
function decimal(b64, scale) {
  if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw badInput("'balance' must be a decimal");
  }
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  if (bytes.length > 0 && bytes[0] & 0x80) n -= 1n << BigInt(8 * bytes.length);
  const digits = (n < 0n ? -n : n).toString().padStart(scale + 1, '0');
  const text = scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return { $numberDecimal: (n < 0n ? '-' : '') + text };
}

function text(row, field) {
  if (typeof row[field] !== 'string') throw badInput(`'${field}' must be a string`);
  return row[field];
}

function toDocument(_id, after, schema) {
  let balance = after.balance ?? null;
  if (balance !== null) {
    const scale = fieldSchema(schema, 'after', 'balance')?.parameters?.scale;
    balance = decimal(balance, scale !== undefined ? Number(scale) : BALANCE_SCALE);
  }
  if (typeof after.vip !== 'boolean') throw badInput("'vip' must be a boolean");
  return {
    _id,
    name: `${text(after, 'first_name')} ${text(after, 'last_name')}`,
    email: text(after, 'email'),
    balance,
    isVip: after.vip,
  };
}

const doc = (value) => ({ tag: 'json', val: JSON.stringify(value) });

// SpiderMonkey parses any depth; the other implementations refuse more than
// MAX_DEPTH levels (serde_json's limit), so this one checks the parsed value.
function tooDeep(root) {
  const stack = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop();
    if (depth > MAX_DEPTH) return true;
    for (const key in value) {
      const child = value[key];
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

function parse(bytes) {
  let doc;
  try {
    doc = JSON.parse(utf8.decode(bytes));
  } catch (e) {
    throw badInput(`not JSON: ${e.message}`);
  }
  if (typeof doc === 'object' && doc !== null && tooDeep(doc)) {
    throw badInput(`JSON nested deeper than ${MAX_DEPTH} levels`);
  }
  return unwrap(doc);
}

export function init(_config) {}

export function transform(msg) {
  if (!msg.value || msg.value.length === 0) return []; // a tombstone
  const [value, schema] = parse(msg.value);
  const [key] = msg.key ? parse(msg.key) : [undefined];
  if (value === null) return [];
  if (!isObject(value)) throw badInput('the value is not a Debezium envelope');
  const op = value.op;
  if (!['r', 'c', 'u', 'd', 't', 'm'].includes(op)) throw badInput(`unknown op ${JSON.stringify(op)}`);
  const table = value.source?.table;
  if (table !== 'customers') throw fail('unsupported', `table ${JSON.stringify(table)} is not customers`);
  const _id = isObject(key) ? key.id : undefined;
  if (!Number.isInteger(_id)) throw badInput("the key has no integer 'id'");
  if (op === 'd') return [{ tag: 'delete-one', val: { ns: NS, filter: doc({ _id }) } }];
  if (op === 't' || op === 'm') throw fail('unsupported', `op ${JSON.stringify(op)} is not handled`);
  if (!isObject(value.after)) throw badInput("no 'after' image");
  const replacement = toDocument(_id, value.after, schema);
  return [{ tag: 'replace-one', val: { ns: NS, filter: doc({ _id }), replacement: doc(replacement), upsert: true } }];
}
