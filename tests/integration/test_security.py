"""The secured stack `make up` runs, on a private copy: Kafka sasl-ssl (TLS with the local CA, SCRAM-SHA-512 users,
the ACLs of shared/principals.py) and Redis with ACL users. Who is refused, who gets through, and what never leaks.

One broker and one Redis for the module (deploy/kafka/kafka.sh and deploy/redis/redis.sh, as `make up` starts them).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from services.clean.adapters.redis_seen import RedisSeenEvents
from services.clean.dedup import Candidate, Verdict
from services.fuse.adapters.redis_joins import RedisJoinStore
from services.fuse.join import Arrival
from services.fuse.ports import Arriving, JoinKey
from services.infer.adapters.redis_cache import RedisPredictionCache
from shared.principals import (
    ADMIN,
    OPERATOR,
    hospital_ids,
    hospital_principal,
    kafka_acls,
    service_principal,
)
from shared.security import kafka_client_options
from shared.settings import PROJECT_ROOT, Settings
from shared.topics import CE_ID, CE_SOURCE, DLQ_ERROR, Topic, derived_event_id, hospital_input_topic, topic_name
from tests.support.kafka import TopicReader
from tests.support.processes import ServiceProcess, environment
from tests.support.stack import PrivateStack

pytestmark = pytest.mark.integration

PREFIX = f"sec-{uuid.uuid4().hex[:6]}."
PSEUDONYM_KEY = f"key-{uuid.uuid4().hex}"
HOSPITALS = hospital_ids(PROJECT_ROOT / "deploy" / "hospitals")
# Redis's refusals: "NOPERM User svc-clean has no permissions to run the 'x' command", "... to access one of the keys
# used as arguments", and from inside a script "The user executing the script can't run this command".
NO_PERMISSION = r"(?i)no permissions|can't run this command"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with PrivateStack(tmp_path_factory.mktemp("secured"), PREFIX, secured=True) as stack:
        stack.settings = stack.settings.model_copy(update={"pseudonym_key": SecretStr(PSEUDONYM_KEY)})
        yield stack


def as_(stack: PrivateStack, principal: str) -> Settings:
    return stack.principal_settings(principal)


def without_login(stack: PrivateStack, protocol: str) -> Settings:
    return stack.settings.model_copy(
        update={"kafka_security_protocol": protocol, "kafka_ssl_cafile": stack.var_dir / "tls" / "ca.pem"}
    )


def topic(t: Topic) -> str:
    return topic_name(t, PREFIX)


async def send(settings: Settings, name: str, value: bytes = b"{}") -> int:
    """Produce one record as ``settings``' principal; its offset."""
    client = AIOKafkaProducer(**kafka_client_options(settings), acks="all", enable_idempotence=True)
    await client.start()
    try:
        metadata = await asyncio.wait_for(client.send_and_wait(name, value, headers=[(CE_SOURCE, b"x")]), 20)
        return metadata.offset
    finally:
        await client.stop()


async def record_count(stack: PrivateStack, name: str) -> int:
    """Records on ``name`` (every partition), read as the operator."""
    consumer = AIOKafkaConsumer(**kafka_client_options(as_(stack, OPERATOR)), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in range(stack.settings.topic_partitions)]
        ends, starts = await consumer.end_offsets(partitions), await consumer.beginning_offsets(partitions)
        return sum(ends[p] - starts[p] for p in partitions)
    finally:
        await consumer.stop()


def kafka_admin_module() -> ModuleType:
    """deploy/lib/kafka_admin.py, which the deploy scripts run as a script (not a package)."""
    name = "aimass_deploy_kafka_admin"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "deploy" / "lib" / "kafka_admin.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


async def broker_acls(stack: PrivateStack) -> set[tuple[str, str, str, str, str]]:
    admin = stack.settings.model_copy(
        update={
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "PLAIN",
            "kafka_sasl_username": ADMIN,
            "kafka_sasl_password": SecretStr((stack.var_dir / "secrets/kafka/admin.password").read_text().strip()),
            "kafka_ssl_cafile": stack.var_dir / "tls" / "ca.pem",
        }
    )
    client = AIOKafkaClient(**kafka_client_options(admin))
    await client.bootstrap()
    try:
        found = await kafka_admin_module().describe_acls(client)
    finally:
        await client.close()
    return {(b.principal, b.resource_type, b.name, b.pattern, b.operation) for b in found}


# -- nobody without credentials ---------------------------------------------------------------------------------
def kcat_produce(stack: PrivateStack, name: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kcat", "-P", "-b", f"127.0.0.1:{stack.kafka_port}", "-t", name, "-m", "10", *options],
        input="intruder\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kcat_without_credentials_cannot_produce(stack: PrivateStack) -> None:
    name = hospital_input_topic("cleveland", PREFIX)
    started = time.monotonic()
    plain = kcat_produce(stack, name)  # PLAINTEXT against the TLS listener
    tls_only = kcat_produce(
        stack, name, "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={stack.var_dir / 'tls' / 'ca.pem'}"
    )  # the broker's certificate checks out, but no SASL login follows
    assert plain.returncode != 0 and tls_only.returncode != 0
    assert "Disconnected while requesting ApiVersion" in plain.stderr  # the TLS listener hung up on plaintext
    assert "Broker transport failure" in tls_only.stderr or "Disconnected" in tls_only.stderr
    assert time.monotonic() - started < 50, "refused, not timed out"
    assert asyncio.run(record_count(stack, name)) == 0


async def test_aiokafka_without_credentials_or_with_a_wrong_password_is_refused(stack: PrivateStack) -> None:
    wrong = as_(stack, hospital_principal("cleveland")).model_copy(
        update={"kafka_sasl_password": SecretStr(f"wrong-{uuid.uuid4().hex}")}
    )
    for settings in (without_login(stack, "PLAINTEXT"), without_login(stack, "SSL"), wrong):
        client = AIOKafkaProducer(**kafka_client_options(settings), request_timeout_ms=5000)
        with pytest.raises(KafkaConnectionError):
            await client.start()  # the broker refuses to even serve metadata
        await client.stop()
    assert await record_count(stack, hospital_input_topic("cleveland", PREFIX)) == 0


# -- each principal only where the table lets it ----------------------------------------------------------------
async def test_a_hospital_writes_its_own_topic_and_nothing_else(stack: PrivateStack) -> None:
    hungary = as_(stack, hospital_principal("hungary"))
    own = hospital_input_topic("hungary", PREFIX)
    before = await record_count(stack, own)
    await send(hungary, own, b'{"patient_id": "H-1"}')
    assert await record_count(stack, own) == before + 1
    for foreign in (hospital_input_topic("cleveland", PREFIX), topic(Topic.INGEST_RAW), topic(Topic.RECORDS_CLEAN)):
        with pytest.raises(TopicAuthorizationFailedError):
            await send(hungary, foreign)
        assert await record_count(stack, foreign) == 0, foreign
    # Nor can it read what the platform makes (other hospitals' records, predictions).
    consumer = AIOKafkaConsumer(topic(Topic.RECORDS_CLEAN), **kafka_client_options(hungary), request_timeout_ms=5000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await consumer.start()  # refused as it asks for the topic's metadata
            await asyncio.wait_for(consumer.getmany(timeout_ms=3000), 20)
    finally:
        await consumer.stop()


async def test_a_service_writes_only_its_outputs_and_creates_nothing(stack: PrivateStack) -> None:
    clean = as_(stack, service_principal("clean"))
    with pytest.raises(TopicAuthorizationFailedError):
        await send(clean, topic(Topic.PREDICTIONS))
    with pytest.raises(TopicAuthorizationFailedError):
        await send(clean, hospital_input_topic("cleveland", PREFIX))  # a service cannot pose as a hospital either
    await send(clean, topic(Topic.DEADLETTER))  # its own outputs go through
    admin = AIOKafkaAdminClient(**kafka_client_options(clean), request_timeout_ms=10_000)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(f"{PREFIX}made-by-clean", 1, 1)])
        assert [error for _, error, *_ in response.topic_errors] == [29]  # TOPIC_AUTHORIZATION_FAILED
    finally:
        await admin.close()


async def test_the_broker_holds_exactly_the_tables_acls_and_a_second_apply_changes_nothing(
    stack: PrivateStack,
) -> None:
    table = {
        (f"User:{a.principal}", a.resource.value, a.name, a.pattern.value, a.operation.value)
        for a in kafka_acls(PREFIX, HOSPITALS)
    }
    assert await broker_acls(stack) == table
    stack.secure_again()
    assert await broker_acls(stack) == table


async def test_a_rotated_hospital_password_replaces_the_old_one(stack: PrivateStack) -> None:
    principal = hospital_principal("switzerland")
    old = as_(stack, principal)
    (stack.var_dir / "secrets" / "kafka" / f"{principal}.password").unlink()
    stack.secure_again()  # what `deploy/kafka/kafka.sh secure` (or the next start) does: a new one is made and set
    new = as_(stack, principal)
    assert new.kafka_sasl_password != old.kafka_sasl_password
    await send(new, hospital_input_topic("switzerland", PREFIX))
    client = AIOKafkaProducer(**kafka_client_options(old), request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await client.start()
    await client.stop()


async def test_a_hospital_removed_from_deploy_hospitals_loses_its_user_and_acls(
    stack: PrivateStack, tmp_path: Path
) -> None:
    kept = [h for h in HOSPITALS if h != "hungary"]
    for hospital in kept:
        (tmp_path / f"{hospital}.yaml").write_text((PROJECT_ROOT / "deploy/hospitals" / f"{hospital}.yaml").read_text())
    hungary = as_(stack, hospital_principal("hungary"))
    stack.env["AIMASS_HOSPITALS_DIR"] = str(tmp_path)
    try:
        stack.secure_again()
        assert not any(acl[0] == "User:hospital-hungary" for acl in await broker_acls(stack))
        client = AIOKafkaProducer(**kafka_client_options(hungary), request_timeout_ms=5000)
        with pytest.raises(KafkaConnectionError):
            await client.start()  # no such user any more
        await client.stop()
    finally:
        del stack.env["AIMASS_HOSPITALS_DIR"]
        stack.secure_again()
    await send(as_(stack, hospital_principal("hungary")), hospital_input_topic("hungary", PREFIX))  # back


# -- the services and the command line on the secured stack ---------------------------------------------------
async def test_services_run_as_their_own_principals_and_never_reveal_secrets(stack: PrivateStack) -> None:
    secrets = {
        env[key]
        for name in ("ingest", "clean")
        for env in [stack.principal_env(service_principal(name))]
        for key in ("AIMASS_KAFKA_SASL_PASSWORD", "AIMASS_REDIS_URL")
    } | {PSEUDONYM_KEY}
    services = {
        name: ServiceProcess(name, stack.settings, **stack.principal_env(service_principal(name))).start()
        for name in ("ingest", "clean")
    }
    try:
        for process in services.values():
            process.wait_ready()
        ce_id = str(uuid.uuid4())
        reader = await TopicReader(as_(stack, OPERATOR), Topic.RECORDS_CLEAN).open()
        client = AIOKafkaProducer(**kafka_client_options(as_(stack, OPERATOR)), acks="all", enable_idempotence=True)
        await client.start()
        try:
            body = json.dumps({"patient_id": "MRN-SEC-1", "age_years": 40, "sex": "female"}).encode()
            await client.send_and_wait(
                topic(Topic.INGEST_RAW),
                body,
                headers=[(CE_SOURCE, b"cleveland"), (CE_ID, ce_id.encode()), ("content-type", b"application/json")],
            )
            expected = derived_event_id("ingest", f"cleveland/{ce_id}", 0)
            # Through ingest (svc-ingest), clean (svc-clean, whose de-duplication runs its Lua scripts in Redis as
            # its own ACL user) onto records.clean.
            await reader.wait_for(lambda r: json.loads(r.value)["record_id"] == expected, timeout=20)
            await a_hospital_publishes_as_itself_and_cannot_pose_as_another(stack, reader)
        finally:
            await client.stop()
            await reader.close()
        for process in services.values():
            ready = process.get("/readyz", timeout=3)
            assert ready.status_code == 200, ready.text
            metrics = process.get("/metrics", timeout=3).text
            assert not any(secret in ready.text or secret in metrics for secret in secrets)
    finally:
        for process in services.values():
            process.stop()
    for process in services.values():
        log = process.log_path.read_text()
        assert not any(secret in log for secret in secrets)


async def a_hospital_publishes_as_itself_and_cannot_pose_as_another(stack: PrivateStack, clean: TopicReader) -> None:
    """hungary on its own topic: its record flows; the same login claiming to be cleveland: dead-lettered by ingest."""
    hungary = AIOKafkaProducer(**kafka_client_options(as_(stack, hospital_principal("hungary"))), acks="all")
    letters = await TopicReader(as_(stack, OPERATOR), Topic.DEADLETTER).open()
    await hungary.start()
    try:
        own, posing = f"own-{uuid.uuid4()}", f"posing-{uuid.uuid4()}"
        for message_id, claimed in ((own, b"hungary"), (posing, b"cleveland")):
            body = json.dumps({"patient_id": f"MRN-{message_id}", "age_years": 61, "sex": "male"}).encode()
            headers = [(CE_SOURCE, claimed), (CE_ID, message_id.encode()), ("content-type", b"application/json")]
            await hungary.send_and_wait(hospital_input_topic("hungary", PREFIX), body, headers=headers)
        expected = derived_event_id("ingest", f"hungary/{own}", 0)
        [record] = await clean.wait_for(lambda r: json.loads(r.value)["record_id"] == expected, timeout=20)
        assert json.loads(record.value)["hospital"] == "hungary"
        [letter] = await letters.wait_for(lambda r: dict(r.headers).get(CE_ID) == posing.encode(), timeout=20)
        reason = dict(letter.headers)[DLQ_ERROR].decode()
        assert "another hospital than the input topic of hungary" in reason
    finally:
        await hungary.stop()
        await letters.close()


def test_a_service_with_a_wrong_password_exits_without_logging_it(stack: PrivateStack) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    env = {**stack.principal_env(service_principal("fuse")), "AIMASS_KAFKA_SASL_PASSWORD": wrong}
    service = ServiceProcess("fuse", stack.settings, **env).start()
    try:
        assert service.process is not None
        service.process.wait(timeout=60)  # cannot start without the broker: exits rather than serve half-ready
    finally:
        service.stop()
    log = service.log_path.read_text()
    assert service.process.returncode != 0
    assert "SaslAuthenticationFailed" in log or "Authentication failed" in log
    assert wrong not in log


def cli(stack: PrivateStack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``aimass ...`` as a person runs it: no credentials in the environment, only the stack's var dir."""
    env = environment(stack.settings)
    assert not any(key.startswith(("AIMASS_KAFKA_SASL", "AIMASS_KAFKA_SECURITY")) for key in env)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_command_line_logs_in_by_itself_as_the_operator_or_as_a_hospital(
    stack: PrivateStack, tmp_path: Path
) -> None:
    document = tmp_path / "record.json"
    document.write_text(json.dumps({"patient_id": "MRN-CLI-1", "age_years": 50, "sex": "male"}))
    contract, own = topic(Topic.INGEST_RAW), hospital_input_topic("va-long-beach", PREFIX)
    before = {name: await record_count(stack, name) for name in (contract, own)}
    as_operator = cli(stack, "publish", str(document), "--hospital", "va-long-beach")
    as_hospital = cli(stack, "publish", str(document), "--hospital", "va-long-beach", "--as-hospital")
    assert as_operator.returncode == 0, as_operator.stderr
    assert as_hospital.returncode == 0, as_hospital.stderr
    assert f"topic {contract}," in as_operator.stdout and f"topic {own}," in as_hospital.stdout
    assert {name: await record_count(stack, name) for name in (contract, own)} == {
        contract: before[contract] + 1,
        own: before[own] + 1,
    }
    tail = cli(stack, "tail", "ingest.raw", "--from-beginning", "--max", "1", "--timeout", "10")
    assert tail.returncode == 0, tail.stderr
    assert json.loads(tail.stdout.splitlines()[0])["topic"] == contract
    # Its own consumer group, committed, as the operator: whatever earlier tests dead-lettered (ingest refuses a
    # hospital posing as another on its topic) goes back where it came from, the operator may write every topic.
    replay = cli(stack, "replay", "--timeout", "3")
    assert replay.returncode == 0 and ", failed 0" in replay.stdout, replay.stdout + replay.stderr
    # A hospital's principal is refused beyond its topic, whatever the command line asks.
    foreign = cli(stack, "publish", str(document), "--hospital", "cleveland", "--as-hospital")
    assert foreign.returncode == 0  # cleveland's own topic, with cleveland's credentials
    assert os.environ.get("AIMASS_KAFKA_SASL_PASSWORD") is None  # nothing leaked into the test's own environment


# -- Redis ------------------------------------------------------------------------------------------------------
def redis_as(stack: PrivateStack, service: str) -> Redis:
    return Redis.from_url(stack.principal_env(service_principal(service))["AIMASS_REDIS_URL"])


async def test_redis_refuses_anonymous_clients_and_wrong_passwords(stack: PrivateStack) -> None:
    once = Retry(NoBackoff(), 0)  # a refusal is an answer: no retries with back-off
    anonymous = Redis(port=stack.redis_port, retry=once)
    wrong = Redis(port=stack.redis_port, username=service_principal("clean"), password="wrong", retry=once)
    try:
        with pytest.raises(AuthenticationError):
            await anonymous.ping()  # NOAUTH: the default user is off
        with pytest.raises(AuthenticationError):
            await wrong.ping()
    finally:
        await anonymous.aclose()
        await wrong.aclose()


async def test_each_service_runs_its_own_redis_scripts_on_its_own_keys_only(stack: PrivateStack) -> None:
    namespace = f"sec-{uuid.uuid4().hex[:6]}"
    clean, infer, fuse, ingest = (redis_as(stack, s) for s in ("clean", "infer", "fuse", "ingest"))
    try:
        seen = RedisSeenEvents(clean, namespace, 600)
        batch = [Candidate("e-1", "f-a"), Candidate("e-2", "f-a")]
        assert await seen.judge(batch) == [Verdict.NEW, Verdict.CONTENT]
        await seen.remember(["e-1"])
        assert await seen.judge([Candidate("e-1", "f-a")]) == [Verdict.EVENT_ID]

        cache = RedisPredictionCache(infer, ttl_seconds=60)
        keys = [f"aimass:infer:prediction:{{{namespace}}}:{n}" for n in range(3)]
        assert await cache.put_many([[(k, b"0.5") for k in keys]])  # SCRIPT LOAD + EVALSHA in a pipeline
        assert await cache.get_many([keys, []]) == [[b"0.5"] * 3, []]
        assert cache.failures == 0

        store = RedisJoinStore(fuse, namespace, ttl_seconds=600, lease_seconds=5)
        key = JoinKey("heart_disease", str(uuid.uuid4()))
        [added] = await store.add_many([Arriving(key, "hungary", "{}", 101.0)], now=100.0)
        assert added.arrival is Arrival.ADDED
        assert await store.due(now=102.0, limit=10) == [key]
        assert (await store.claim_many([key], now=102.0))[key].payloads == {"hungary": "{}"}
        await store.emitted_many([key])

        assert await ingest.ping()  # the services without Redis data can answer readiness checks
        with pytest.raises(NoPermissionError):
            await ingest.get(f"aimass:clean:{namespace}:seen:e-1")
        with pytest.raises(NoPermissionError):
            await clean.get(keys[0])  # infer's key: not clean's to read
        with pytest.raises(NoPermissionError):
            await infer.set(f"aimass:clean:{namespace}:seen:forged", "1")  # nor infer's to forge a dedup entry
        for forbidden in (("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("SCAN", "0")):
            with pytest.raises((NoPermissionError, ResponseError), match=NO_PERMISSION):
                await clean.execute_command(*forbidden)
        # A script cannot reach further than its caller: the same rules hold for redis.call.
        with pytest.raises(ResponseError, match=NO_PERMISSION):
            await clean.eval("return redis.call('FLUSHALL')", 0)
        with pytest.raises(ResponseError, match=NO_PERMISSION):
            await clean.eval("return redis.call('GET', KEYS[1])", 1, keys[0])
        assert await infer.get(keys[0]) == b"0.5"  # and nothing above flushed anything
    finally:
        for client in (clean, infer, fuse, ingest):
            await client.aclose()


# -- how the command line finds its credentials (no broker needed) ---------------------------------------------
def local_stack(var: Path, kafka: str, principal: str = OPERATOR) -> None:
    (var / "run").mkdir(parents=True)
    (var / "run" / "kafka.security").write_text(f"{kafka}\n")
    (var / "secrets").mkdir()
    (var / "secrets" / f"{principal}.env").write_text(
        f"# comment\nAIMASS_KAFKA_SASL_USERNAME={principal}\nAIMASS_KAFKA_SASL_PASSWORD=p=w\n"
    )


def test_the_command_line_reads_its_principals_file_only_from_a_secured_stack(tmp_path: Path) -> None:
    from services.cli.credentials import load_local_credentials, principal_for

    assert principal_for("tail") == OPERATOR
    assert principal_for("run", "clean") == service_principal("clean")
    assert principal_for("publish", as_hospital="hungary") == hospital_principal("hungary")
    open_stack, secured = tmp_path / "open", tmp_path / "secured"
    local_stack(open_stack, "plaintext")
    local_stack(secured, "sasl-ssl")
    environ = {"AIMASS_VAR_DIR": str(open_stack)}
    assert load_local_credentials(OPERATOR, environ) is None and environ == {"AIMASS_VAR_DIR": str(open_stack)}
    environ = {"AIMASS_VAR_DIR": str(secured), "AIMASS_KAFKA_SASL_USERNAME": "someone-else"}
    assert load_local_credentials(OPERATOR, environ) == secured / "secrets" / "operator.env"
    assert environ["AIMASS_KAFKA_SASL_USERNAME"] == "someone-else"  # what the caller set wins
    assert environ["AIMASS_KAFKA_SASL_PASSWORD"] == "p=w"  # split at the first '='
    assert load_local_credentials(service_principal("clean"), {"AIMASS_VAR_DIR": str(secured)}) is None  # no file
