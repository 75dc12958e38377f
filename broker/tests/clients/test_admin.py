"""The AdminClient creates, describes, alters and deletes topics and adds partitions;
bad requests get Kafka's error codes."""

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def error_of(future):
    with pytest.raises(KafkaException) as e:
        future.result(30)
    return e.value.args[0].code()


def test_create_describe_and_delete_topic(broker):
    a = admin(broker)
    a.create_topics([NewTopic("orders", 4, 1, config={"retention.ms": "3600000", "cleanup.policy": "delete"})])["orders"].result(30)
    md = a.list_topics(timeout=10)
    assert len(md.topics["orders"].partitions) == 4
    assert md.topics["orders"].partitions[3].leader == 0
    desc = a.describe_topics(__import__("confluent_kafka").TopicCollection(["orders"]))["orders"].result(30)
    assert len(desc.partitions) == 4
    a.delete_topics(["orders"])["orders"].result(30)
    assert "orders" not in a.list_topics(timeout=10).topics
    assert not any(p.startswith("orders-") for p in __import__("os").listdir(broker.data_dir))


def test_validate_only_creates_nothing(broker):
    a = admin(broker)
    a.create_topics([NewTopic("dry", 2, 1)], validate_only=True)["dry"].result(30)
    assert "dry" not in a.list_topics(timeout=10).topics


def test_describe_configs_reports_value_default_and_source(broker):
    a = admin(broker)
    a.create_topics([NewTopic("cfg", 1, 1, config={"retention.ms": "1000"})])["cfg"].result(30)
    res = ConfigResource(ResourceType.TOPIC, "cfg")
    configs = a.describe_configs([res])[res].result(30)
    assert configs["retention.ms"].value == "1000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["max.message.bytes"].value == "1048588"
    broker_res = ConfigResource(ResourceType.BROKER, "0")
    bconf = a.describe_configs([broker_res])[broker_res].result(30)
    assert bconf["log.dirs"].value == broker.data_dir
    assert bconf["log.dirs"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert bconf["num.partitions"].value == "1"


def test_incremental_alter_configs_sets_and_deletes(broker):
    a = admin(broker)
    a.create_topics([NewTopic("alter", 1, 1)])["alter"].result(30)
    res = ConfigResource(
        ResourceType.TOPIC,
        "alter",
        incremental_configs=[
            ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ],
    )
    a.incremental_alter_configs([res])[res].result(30)
    got = a.describe_configs([ConfigResource(ResourceType.TOPIC, "alter")])
    configs = list(got.values())[0].result(30)
    assert configs["retention.bytes"].value == "1048576"
    assert configs["cleanup.policy"].value == "delete,compact"
    res = ConfigResource(
        ResourceType.TOPIC, "alter",
        incremental_configs=[ConfigEntry("retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE)],
    )
    a.incremental_alter_configs([res])[res].result(30)
    configs = list(a.describe_configs([ConfigResource(ResourceType.TOPIC, "alter")]).values())[0].result(30)
    assert configs["retention.bytes"].value == "-1"


def test_alter_configs_persist_across_restart(broker):
    a = admin(broker)
    a.create_topics([NewTopic("persist", 1, 1)])["persist"].result(30)
    res = ConfigResource(ResourceType.TOPIC, "persist", set_config={"segment.bytes": "1048576"})
    a.alter_configs([res])[res].result(30)
    broker.stop()
    broker.start()
    a = admin(broker)
    configs = list(a.describe_configs([ConfigResource(ResourceType.TOPIC, "persist")]).values())[0].result(30)
    assert configs["segment.bytes"].value == "1048576"


def test_create_partitions_adds_partitions(broker):
    a = admin(broker)
    a.create_topics([NewTopic("grow", 2, 1)])["grow"].result(30)
    a.create_partitions([NewPartitions("grow", 5)])["grow"].result(30)
    assert len(a.list_topics(timeout=10).topics["grow"].partitions) == 5
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("grow", value=b"x", partition=4)
    assert p.flush(10) == 0
    assert error_of(a.create_partitions([NewPartitions("grow", 3)])["grow"]) == KafkaError.INVALID_PARTITIONS


@pytest.mark.parametrize(
    "name",
    [".", "..", "a/b", "x" * 250, "spaces are bad"],
    ids=["dot", "dotdot", "slash", "too-long", "space"],
)
def test_invalid_topic_names_are_rejected(broker, name):
    a = admin(broker)
    assert error_of(a.create_topics([NewTopic(name, 1, 1)])[name]) == KafkaError.TOPIC_EXCEPTION


def test_metadata_for_an_invalid_topic_name_is_invalid_topic_and_creates_nothing(broker):
    # What librdkafka's 0057 checks, without its race: even with auto-creation on, a
    # Metadata request for an invalid name is INVALID_TOPIC_EXCEPTION, as in Kafka.
    a = admin(broker)
    bad = "invalid_topic$#!"
    assert a.list_topics(topic=bad, timeout=10).topics[bad].error.code() == KafkaError.TOPIC_EXCEPTION
    assert bad not in a.list_topics(timeout=10).topics


def test_bad_topic_requests_get_their_error_codes(broker):
    a = admin(broker)
    assert error_of(a.create_topics([NewTopic("zero", 0, 1)])["zero"]) == KafkaError.INVALID_PARTITIONS
    assert error_of(a.create_topics([NewTopic("rf3", 1, 3)])["rf3"]) == KafkaError.INVALID_REPLICATION_FACTOR
    assert error_of(a.create_topics([NewTopic("badcfg", 1, 1, config={"retention.ms": "soon"})])["badcfg"]) == KafkaError.INVALID_CONFIG
    assert error_of(a.create_topics([NewTopic("unknowncfg", 1, 1, config={"no.such.config": "1"})])["unknowncfg"]) == KafkaError.INVALID_CONFIG
    a.create_topics([NewTopic("twice", 1, 1)])["twice"].result(30)
    assert error_of(a.create_topics([NewTopic("twice", 1, 1)])["twice"]) == KafkaError.TOPIC_ALREADY_EXISTS
    assert error_of(a.delete_topics(["missing"])["missing"]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    res = ConfigResource(ResourceType.TOPIC, "twice", set_config={"cleanup.policy": "shred"})
    assert error_of(a.alter_configs([res])[res]) == KafkaError.INVALID_CONFIG


def test_more_than_ten_thousand_new_partitions_per_request_are_a_policy_violation(broker):
    """Kafka's controller limit (MAX_PARTITIONS_PER_BATCH): every topic of an
    oversized request gets POLICY_VIOLATION and nothing is created; 10,000 in
    one request is still allowed. (librdkafka refuses more than 100,000 itself;
    tests/hostile_input.rs sends 2^31-1.)"""
    a = admin(broker)
    fs = a.create_topics([NewTopic("huge", 100_000, 1), NewTopic("small", 1, 1)])
    assert error_of(fs["huge"]) == KafkaError.POLICY_VIOLATION
    assert error_of(fs["small"]) == KafkaError.POLICY_VIOLATION
    fs = a.create_topics([NewTopic("half-a", 5001, 1), NewTopic("half-b", 5000, 1)])
    assert error_of(fs["half-a"]) == KafkaError.POLICY_VIOLATION
    a.create_topics([NewTopic("grows", 1, 1)])["grows"].result(30)
    assert error_of(a.create_partitions([NewPartitions("grows", 100_000)])["grows"]) == KafkaError.POLICY_VIOLATION
    assert error_of(a.create_partitions([NewPartitions("grows", 10_002)])["grows"]) == KafkaError.POLICY_VIOLATION
    topics = a.list_topics(timeout=10).topics
    assert not {"huge", "small", "half-a", "half-b"} & set(topics)
    assert len(topics["grows"].partitions) == 1
    a.create_partitions([NewPartitions("grows", 3)])["grows"].result(30)


def test_describe_cluster_lists_this_broker(broker):
    a = admin(broker)
    desc = a.describe_cluster().result(10)
    assert [n.id for n in desc.nodes] == [0]
    assert desc.controller.id == 0
    assert desc.cluster_id == "skein-cluster"


def test_delete_records_moves_the_low_watermark(broker):
    from confluent_kafka import Consumer, TopicPartition

    a = admin(broker)
    a.create_topics([NewTopic("trim", 1, 1)])["trim"].result(30)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        p.produce("trim", value=b"%d" % i)
    p.flush(10)
    [r] = a.delete_records([TopicPartition("trim", 0, 60)]).values()
    assert r.result(30).low_watermark == 60
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    assert c.get_watermark_offsets(TopicPartition("trim", 0), 10) == (60, 100)
    c.close()


def test_dynamic_broker_configs_show_in_describe_configs(broker):
    a = admin(broker)
    own = ConfigResource(
        ResourceType.BROKER,
        "0",
        incremental_configs=[
            ConfigEntry("leader.replication.throttled.rate", "1000000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    a.incremental_alter_configs([own])[own].result(30)
    res = ConfigResource(ResourceType.BROKER, "0")
    conf = a.describe_configs([res])[res].result(30)
    rate = conf["leader.replication.throttled.rate"]
    assert (rate.value, rate.source, rate.is_read_only) == ("1000000", ConfigSource.DYNAMIC_BROKER_CONFIG.value, False)
    # Defaults for the whole cluster (broker resource "") are tested in broker/tests/protocol.rs:
    # neither librdkafka nor kafka-python can name that resource.
    assert conf["log.dirs"].is_read_only, "a static-only config"
    # A config that cannot change at run time is refused with its reason.
    bad = ConfigResource(
        ResourceType.BROKER,
        "0",
        incremental_configs=[ConfigEntry("log.dirs", "/elsewhere", incremental_operation=AlterConfigOpType.SET)],
    )
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([bad])[bad].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_authorized_operations_are_all_that_kafka_allows_without_an_authorizer(broker):
    """As Kafka without an authorizer: every operation of the resource type when
    asked for (librdkafka's 0081 checks 8 for a topic and 7 for the cluster),
    none when not."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AclOperation

    a = admin(broker)
    a.create_topics([NewTopic("ops", 1, 1)])["ops"].result(30)
    topic = a.describe_topics(TopicCollection(["ops"]), include_authorized_operations=True)["ops"].result(30)
    assert set(topic.authorized_operations) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE, AclOperation.ALTER,
        AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
    }
    cluster = a.describe_cluster(include_authorized_operations=True).result(30)
    assert set(cluster.authorized_operations) == {
        AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE,
    }
    assert not a.describe_cluster().result(30).authorized_operations
    assert not a.describe_topics(TopicCollection(["ops"]))["ops"].result(30).authorized_operations


def test_keyless_records_on_a_compacted_topic_are_invalid_record(broker):
    """Kafka's LogValidator: compaction needs a key. Keyed records in the same
    topic are still accepted."""
    a = admin(broker)
    a.create_topics([NewTopic("compacted", 1, 1, config={"cleanup.policy": "compact"})])["compacted"].result(30)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "compression.type": "lz4"})
    results = {}

    def report(key):
        return lambda err, msg: results.__setitem__(key, err)

    p.produce("compacted", key=b"k", value=b"kept", on_delivery=report("keyed"))
    p.flush(30)
    p.produce("compacted", value=b"no key", on_delivery=report("keyless"))
    p.flush(30)
    assert results["keyed"] is None
    assert results["keyless"].code() == KafkaError.INVALID_RECORD


def test_kafka_broker_keys_skein_does_not_act_on_are_accepted_and_marked(broker):
    """Kafka accepts its own broker keys in AlterConfigs (librdkafka's 0081 sets
    sasl.kerberos.min.time.before.relogin); Skein stores them and says in
    DescribeConfigs that it does not act on them. A key Kafka does not know is
    still INVALID_CONFIG."""
    a = admin(broker)
    kerberos = ConfigResource(ResourceType.BROKER, "0", set_config={"sasl.kerberos.min.time.before.relogin": "58000"})
    a.alter_configs([kerberos])[kerberos].result(30)
    res = ConfigResource(ResourceType.BROKER, "0")
    entry = a.describe_configs([res])[res].result(30)["sasl.kerberos.min.time.before.relogin"]
    assert (entry.value, entry.source) == ("58000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    unknown = ConfigResource(
        ResourceType.BROKER,
        "0",
        incremental_configs=[ConfigEntry("no.such.broker.key", "1", incremental_operation=AlterConfigOpType.SET)],
    )
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([unknown])[unknown].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_group_configs_are_described_set_bounded_and_deleted(broker):
    """Kafka 4.0's group resource (type 32): a group that does not exist yet
    has the broker's defaults; SET within group.consumer.min/max.* bounds is
    stored and described as a dynamic group config; out-of-bounds values and
    unknown keys are INVALID_CONFIG; DELETE restores the default."""
    a = admin(broker)
    res = ConfigResource(ResourceType.GROUP, "configured-group")
    before = a.describe_configs([res])[res].result(30)
    assert before["consumer.session.timeout.ms"].value == "45000"
    assert before["consumer.heartbeat.interval.ms"].value == "5000"
    assert before["consumer.session.timeout.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    def alter(key, value, op=AlterConfigOpType.SET):
        r = ConfigResource(ResourceType.GROUP, "configured-group",
                           incremental_configs=[ConfigEntry(key, value, incremental_operation=op)])
        return a.incremental_alter_configs([r])[r]

    alter("consumer.session.timeout.ms", "50000").result(30)
    entry = a.describe_configs([res])[res].result(30)["consumer.session.timeout.ms"]
    assert entry.value == "50000"
    assert entry.source == 8  # DYNAMIC_GROUP_CONFIG
    for key, value in [("consumer.session.timeout.ms", "44999"), ("consumer.session.timeout.ms", "60001"),
                       ("consumer.heartbeat.interval.ms", "fast"), ("no.such.group.key", "1")]:
        assert error_of(alter(key, value)) == KafkaError.INVALID_CONFIG, (key, value)
    alter("consumer.session.timeout.ms", "", AlterConfigOpType.DELETE).result(30)
    after = a.describe_configs([res])[res].result(30)["consumer.session.timeout.ms"]
    assert (after.value, after.source) == ("45000", ConfigSource.DEFAULT_CONFIG.value)
