"""Credentials and permissions of the local stack, from the one table in ``shared/principals.py``.

    secure.py passwords        make the Kafka passwords that are missing (admin, services, operator, issuer, hospitals)
    secure.py kafka            as admin: set every SCRAM user's password, make the broker's ACLs exactly the table's,
                               create the contract topics and one input topic per hospital
    secure.py redis-acl FILE   make the Redis passwords that are missing and write Redis's ACL file
    secure.py env-files        write var/secrets/<principal>.env (what a process of that principal needs in its
                               environment) and <principal>.librdkafka.conf (for kcat -F) for the secured parts

Secrets live under var/secrets/ (kafka/<principal>.password, redis/<user>.password, mode 600, made once: delete one
and run the start again to rotate it). Nothing here prints a secret; failures say which step and why.
Reads the deploy scripts' variables: AIMASS_VAR_DIR, KAFKA_PORT, REDIS_PORT, and the AIMASS_ settings (topic
prefix and partitions, hospitals dir).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Iterable
from hashlib import sha256
from pathlib import Path

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient
from kafka_admin import AdminError, Binding, alter_scram_users, create_acls, delete_acls, describe_acls, scram_users
from pydantic import SecretStr

from shared.broker import ensure_topics
from shared.principals import (
    ADMIN,
    OPERATOR,
    REDIS_ADMIN,
    SCRAM_MECHANISM,
    KafkaAcl,
    deployment_topics,
    hospital_ids,
    hospital_principal,
    kafka_acls,
    kafka_principals,
    redis_users,
    service_principal,
)
from shared.security import kafka_client_options
from shared.settings import SERVICE_NAMES, Settings

# Principals this tool manages: a SCRAM user or ACL of another name (made by hand) is left alone.
MANAGED_PREFIXES = ("svc-", "hospital-")
MANAGED_NAMES = (OPERATOR,)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


class Local:
    """Paths and ports of this stack, as deploy/lib/common.sh and the start scripts see them."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.var = Path(os.environ.get("AIMASS_VAR_DIR") or self.settings.var_dir)
        self.secrets = self.var / "secrets"
        self.run = self.var / "run"
        self.tls = self.var / "tls"
        self.kafka_port = int(os.environ.get("KAFKA_PORT", "9092"))
        self.redis_port = int(os.environ.get("REDIS_PORT", "6379"))
        self.prefix = self.settings.topic_prefix
        self.hospitals = hospital_ids(self.settings.hospitals_dir)

    def profile(self, part: str) -> str:
        """What kafka.sh / redis.sh recorded when they started this stack's broker or Redis ('' when not running)."""
        path = self.run / f"{part}.security"
        return path.read_text().strip() if path.exists() else ""

    def password(self, system: str, user: str, make: bool = False) -> str:
        path = self.secrets / system / f"{user}.password"
        if not path.exists():
            if not make:
                fail(f"no password for {system} user {user} in {path}: start the stack (deploy/stack.sh up)")
            write_secret(path, secrets.token_hex(24))  # hex: safe in URLs, JAAS and env files without quoting
        return path.read_text().strip()

    def admin_settings(self) -> Settings:
        return self.settings.model_copy(
            update={
                "kafka_bootstrap": f"127.0.0.1:{self.kafka_port}",
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": ADMIN,
                "kafka_sasl_password": SecretStr(self.password("kafka", ADMIN)),
                "kafka_ssl_cafile": self.tls / "ca.pem",
            }
        )


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, replacing it in one step."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def managed(principal: str) -> bool:
    name = principal.removeprefix("User:")
    return name.startswith(MANAGED_PREFIXES) or name in MANAGED_NAMES


def bindings(acls: Iterable[KafkaAcl]) -> set[Binding]:
    return {Binding(a.resource.value, a.name, a.pattern.value, f"User:{a.principal}", a.operation.value) for a in acls}


def of_deployment(binding: Binding, prefix: str) -> bool:
    """Whether an ACL is on this deployment's resources (another prefix's ACLs on the same broker are left alone)."""
    group_prefix = f"{prefix.rstrip('.') or 'aimass'}-"
    return binding.name == "*" or binding.name.startswith(prefix or "\0") or binding.name.startswith(group_prefix)


async def apply_kafka(local: Local) -> None:
    admin = local.admin_settings()
    client = AIOKafkaClient(**kafka_client_options(admin), request_timeout_ms=15_000)
    try:
        await client.bootstrap()
    except Exception as error:
        fail(f"cannot log in to Kafka on 127.0.0.1:{local.kafka_port} as {ADMIN} ({type(error).__name__}); see the log")
    try:
        principals = kafka_principals(local.hospitals)
        existing = await scram_users(client, SCRAM_MECHANISM)
        # Every start sets every password (new salt, same secret): a rotated password file takes effect here.
        await alter_scram_users(
            client,
            SCRAM_MECHANISM,
            {p: local.password("kafka", p) for p in principals},
            delete=sorted(u for u in existing - set(principals) if managed(u)),
        )
        wanted = bindings(kafka_acls(local.prefix, local.hospitals))
        present = await describe_acls(client)
        await create_acls(client, sorted(wanted - present))
        stale = [b for b in present - wanted if managed(b.principal) and of_deployment(b, local.prefix)]
        await delete_acls(client, sorted(stale))
    except AdminError as error:
        fail(f"securing Kafka on 127.0.0.1:{local.kafka_port}: {error}")
    finally:
        await client.close()
    await ensure_topics(admin, hospitals=local.hospitals)
    listing = AIOKafkaAdminClient(**kafka_client_options(admin), request_timeout_ms=15_000)
    await listing.start()
    try:
        missing = set(deployment_topics(local.prefix, local.hospitals)) - set(await listing.list_topics())
    finally:
        await listing.close()
    if missing:
        fail(f"Kafka on 127.0.0.1:{local.kafka_port} did not create {', '.join(sorted(missing))}; see its log")


def redis_acl_file(local: Local, path: Path) -> None:
    def hashed(user: str) -> str:
        # Redis keeps SHA-256 hashes: the file holds no password.
        return "#" + sha256(local.password("redis", user, make=True).encode()).hexdigest()

    lines = [
        "user default off resetkeys resetchannels -@all",  # nobody without a name and a password
        f"user {REDIS_ADMIN} on {hashed(REDIS_ADMIN)} ~* &* +@all",
        *(f"user {u.name} on {hashed(u.name)} {u.rules()}" for u in redis_users()),
    ]
    write_secret(path, "\n".join(lines) + "\n")


def env_files(local: Local) -> None:
    kafka, redis = local.profile("kafka") == "sasl-ssl", local.profile("redis") == "acl"
    principals = [*kafka_principals(local.hospitals)]
    for principal in principals:
        env: dict[str, str] = {}
        if kafka:
            env.update(
                AIMASS_KAFKA_BOOTSTRAP=f"127.0.0.1:{local.kafka_port}",
                AIMASS_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                AIMASS_KAFKA_SASL_MECHANISM=SCRAM_MECHANISM,
                AIMASS_KAFKA_SASL_USERNAME=principal,
                AIMASS_KAFKA_SASL_PASSWORD=local.password("kafka", principal),
                AIMASS_KAFKA_SSL_CAFILE=str(local.tls / "ca.pem"),
            )
        if redis and principal in {service_principal(s) for s in SERVICE_NAMES}:
            password = local.password("redis", principal)
            env["AIMASS_REDIS_URL"] = f"redis://{principal}:{password}@127.0.0.1:{local.redis_port}/0"
        path = local.secrets / f"{principal}.env"
        if env:
            header = f"# {principal} on the local stack (secure.py env-files); one KEY=VALUE a line, no quoting\n"
            write_secret(path, header + "".join(f"{key}={value}\n" for key, value in env.items()))
        else:
            path.unlink(missing_ok=True)
        conf = local.secrets / f"{principal}.librdkafka.conf"
        if kafka and (principal == OPERATOR or principal in {hospital_principal(h) for h in local.hospitals}):
            write_secret(conf, librdkafka_conf(local, principal))
        else:
            conf.unlink(missing_ok=True)


def librdkafka_conf(local: Local, principal: str) -> str:
    """kcat -F FILE: librdkafka's names for the same settings."""
    return (
        f"# {principal} on the local stack: kcat -F {local.secrets / principal}.librdkafka.conf ...\n"
        f"bootstrap.servers=127.0.0.1:{local.kafka_port}\n"
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanisms={SCRAM_MECHANISM}\n"
        f"sasl.username={principal}\n"
        f"sasl.password={local.password('kafka', principal)}\n"
        f"ssl.ca.location={local.tls / 'ca.pem'}\n"
    )


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in {"passwords", "kafka", "redis-acl", "env-files"}:
        fail("usage: secure.py passwords | kafka | redis-acl FILE | env-files")
    try:
        local = Local()
    except ValueError as error:
        fail(str(error))
    local.secrets.mkdir(parents=True, exist_ok=True)
    local.secrets.chmod(0o700)  # every file in it is 600 too; the folder keeps even their names to the owner
    command = argv[0]
    if command == "passwords":
        for principal in (ADMIN, *kafka_principals(local.hospitals)):
            local.password("kafka", principal, make=True)
    elif command == "kafka":
        asyncio.run(apply_kafka(local))
    elif command == "redis-acl":
        if len(argv) != 2:
            fail("usage: secure.py redis-acl FILE")
        redis_acl_file(local, Path(argv[1]))
    else:
        env_files(local)


if __name__ == "__main__":
    main(sys.argv[1:])
