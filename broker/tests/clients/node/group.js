// Two kafkajs consumers in one group read a topic; prints a JSON summary.
// Records are produced only once both members hold partitions, so that each
// member has records to read whichever joins first.
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, group, n, parts] = process.argv.slice(2);
const N = parseInt(n, 10);
const P = parseInt(parts, 10);

async function main() {
  const kafka = new Kafka({ clientId: 'skein-group-test', brokers: [bootstrap], logLevel: logLevel.ERROR });
  const seen = new Set();
  const perMember = [0, 0];
  const consumers = [0, 1].map(() => kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500 }));
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  // Each member's latest assignment, from its GROUP_JOIN events.
  const assigned = [[], []];
  let shared;
  const bothAssigned = new Promise((resolve) => { shared = resolve; });
  consumers.forEach((c, i) => c.on(c.events.GROUP_JOIN, (e) => {
    assigned[i] = e.payload.memberAssignment[topic] || [];
    if (assigned.every((a) => a.length > 0)) shared();
  }));
  await Promise.all(consumers.map(async (c, i) => {
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      autoCommit: true,
      autoCommitInterval: 100,
      eachMessage: async ({ partition, message }) => {
        seen.add(`${partition}:${message.offset}`);
        perMember[i] += 1;
        if (seen.size >= N) done();
      },
    });
  }));
  const timer = setTimeout(done, 60000);
  await Promise.race([bothAssigned, finished]);
  const producer = kafka.producer();
  await producer.connect();
  const messages = [...Array(N).keys()].map((k) => ({ partition: k % P, value: `m${k}` }));
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();
  await finished;
  clearTimeout(timer);
  await Promise.all(consumers.map((c) => c.disconnect()));
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  await admin.disconnect();
  const committed = offsets[0].partitions.map((p) => Number(p.offset)).reduce((a, b) => a + b, 0);
  console.log(JSON.stringify({ consumed: seen.size, bothMembersWorked: perMember.every((x) => x > 0), committed }));
}

main().catch((e) => { console.error(e); process.exit(1); });
