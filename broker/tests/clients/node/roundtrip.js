// Produces N records with kafkajs, consumes them back, prints a JSON summary.
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;

const [bootstrap, topic, codec, n] = process.argv.slice(2);
const N = parseInt(n, 10);
const compression = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy }[codec];

async function main() {
  // KAFKAJS_SSL_CA: connect over TLS, trusting that CA file.
  const ssl = process.env.KAFKAJS_SSL_CA ? { ca: [require('fs').readFileSync(process.env.KAFKAJS_SSL_CA)] } : undefined;
  // KAFKAJS_SASL=mechanism:user:password: authenticate with SASL.
  const [mechanism, username, password] = (process.env.KAFKAJS_SASL || '').split(':');
  const sasl = process.env.KAFKAJS_SASL ? { mechanism, username, password } : undefined;
  const kafka = new Kafka({ clientId: 'skein-test', brokers: [bootstrap], logLevel: logLevel.ERROR, ssl, sasl });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let start = 0; start < N; start += 500) {
    const messages = [];
    for (let i = start; i < Math.min(N, start + 500); i++) {
      messages.push({ key: `k${i}`, value: `v${i}`, headers: { h: `${i}` }, timestamp: `${1700000000000 + i}` });
    }
    await producer.send({ topic, compression, acks: -1, messages });
  }
  await producer.disconnect();

  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  // kafkajs' consumer needs a group coordinator, which a later issue adds; read
  // through kafkajs' own cluster and broker objects with plain Fetch requests.
  const cluster = kafka[Object.getOwnPropertySymbols(kafka).find((s) => s.toString().includes('createCluster'))]({});
  await cluster.connect();
  await cluster.refreshMetadata([topic]);
  const broker = await cluster.findBroker({ nodeId: '0' });
  const seen = [];
  let inOrder = true;
  let offset = '0';
  while (seen.length < N) {
    const resp = await broker.fetch({
      replicaId: -1, isolationLevel: 0, maxWaitTime: 500, minBytes: 1, maxBytes: 10485760,
      topics: [{ topic, partitions: [{ partition: 0, fetchOffset: offset, maxBytes: 1048576 }] }],
    });
    const part = resp.responses[0].partitions[0];
    if (part.errorCode !== 0) throw new Error(`fetch error ${part.errorCode}`);
    for (const m of part.messages) {
      if (BigInt(m.offset) < BigInt(offset)) continue;
      if (Number(m.offset) !== seen.length || m.key.toString() !== `k${seen.length}` || m.headers.h.toString() !== `${seen.length}`) inOrder = false;
      seen.push(m);
      offset = (BigInt(m.offset) + 1n).toString();
    }
  }
  await cluster.disconnect();
  console.log(JSON.stringify({ produced: Number(offsets[0].high), consumed: seen.length, inOrder }));
}

main().catch((e) => { console.error(e); process.exit(1); });
