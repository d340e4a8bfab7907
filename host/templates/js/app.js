// {{name}}: Debezium change events to MongoDB writes.

const utf8 = new TextDecoder('utf-8', { fatal: true });
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const badInput = (message) => ({ kind: 'bad-input', message });
const doc = (value) => ({ tag: 'json', val: JSON.stringify(value) });

// Kafka Connect's JSON converter with schemas: the payload; without: the document.
function parse(bytes) {
  let doc;
  try {
    doc = JSON.parse(utf8.decode(bytes));
  } catch (e) {
    throw badInput(`not JSON: ${e.message}`);
  }
  const keys = isObject(doc) ? Object.keys(doc) : [];
  return keys.length === 2 && 'schema' in doc && 'payload' in doc ? doc.payload : doc;
}

export function init(_config) {}

export function transform(msg) {
  if (!msg.value || msg.value.length === 0) return []; // a tombstone
  const value = parse(msg.value);
  const key = msg.key ? parse(msg.key) : undefined;
  if (!isObject(value) || typeof value.op !== 'string') throw badInput('not a Debezium change event');
  const table = value.source?.table;
  if (typeof table !== 'string' || !isObject(key)) throw badInput('no source.table or no key');
  const ns = { collection: table };
  const filter = doc({ _id: key });
  if (value.op === 'd') return [{ tag: 'delete-one', val: { ns, filter } }];
  if (['c', 'r', 'u'].includes(value.op)) {
    if (!isObject(value.after)) throw badInput("no 'after' image");
    const replacement = doc({ _id: key, ...value.after });
    return [{ tag: 'replace-one', val: { ns, filter, replacement, upsert: true } }];
  }
  throw { kind: 'unsupported', message: `op ${JSON.stringify(value.op)} is not handled` };
}
