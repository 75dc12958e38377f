// kafkajs' transactional producer: commits a transaction, aborts one (after its
// records were sent), commits another with consumer offsets; then reads the
// topic back with kafkajs' read_committed consumer. Prints a JSON summary.
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, group] = process.argv.slice(2);

async function main() {
  const kafka = new Kafka({ clientId: 'skein-txn-test', brokers: [bootstrap], logLevel: logLevel.ERROR });
  const producer = kafka.producer({ transactionalId: `${topic}-kafkajs`, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const send = async (prefix, end) => {
    const txn = await producer.transaction();
    await txn.send({ topic, messages: [...Array(10).keys()].map((i) => ({ value: `${prefix}${i}` })) });
    if (prefix === 'c') {
      await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset: '5' }] }] });
    }
    await (end === 'commit' ? txn.commit() : txn.abort());
  };
  await send('a', 'commit');
  await send('b', 'abort');
  await send('c', 'commit');
  await producer.disconnect();

  const admin = kafka.admin();
  await admin.connect();
  const committed = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  await admin.disconnect();

  const consumer = kafka.consumer({ groupId: `${group}-reader`, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const values = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${values.length} records`)), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        values.push(message.value.toString());
        if (values.length >= 20) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await new Promise((r) => setTimeout(r, 1000));
  await consumer.disconnect();
  console.log(JSON.stringify({ values, committed: committed[0].partitions[0].offset }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
