#!/usr/bin/env bash
# The local certificate authority and the broker's certificate, under var/tls/ (never committed):
#   ca.pem          the CA certificate: what every client trusts (AIMASS_KAFKA_SSL_CAFILE, kcat's ssl.ca.location)
#   ca.key          the CA's private key (mode 600): signs the broker certificate, nothing else
#   broker.pem      the broker's private key, its certificate and the CA: Kafka's PEM keystore (mode 600)
#   broker.crt      the broker's certificate alone, for inspection (SAN: localhost, 127.0.0.1, TLS_SAN extras)
# Idempotent and quiet: makes what is missing, renews the broker certificate when it expires within 30 days or no
# longer chains to the CA; prints nothing when there is nothing to do. TLS_SAN="DNS:kafka,IP:10.0.0.5" adds names.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib/common.sh"

TLS_DIR=$VAR/tls
LOG=$LOG_DIR/tls.log
CA_DAYS=3650
BROKER_DAYS=825
RENEW_SECONDS=$((30 * 24 * 3600))
SAN="DNS:localhost,IP:127.0.0.1${TLS_SAN:+,$TLS_SAN}"

command -v openssl >/dev/null || die "openssl not found: install it (apt-get install openssl)"
mkdir -p "$TLS_DIR"
chmod 755 "$TLS_DIR"  # ca.pem and broker.crt are public; every key file is mode 600
umask 077  # every key is born readable by its owner only

run() { "$@" >>"$LOG" 2>&1 || die "$1 failed making the local certificates in $TLS_DIR; see $LOG"; }

make_ca() {
  run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS_DIR/ca.key"
  run openssl req -x509 -new -key "$TLS_DIR/ca.key" -sha256 -days "$CA_DAYS" -subj "/O=AI Mass/CN=AI Mass local CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$TLS_DIR/ca.pem"
  chmod 644 "$TLS_DIR/ca.pem"
  rm -f "$TLS_DIR/broker.crt"  # a new CA: the old broker certificate no longer chains to it
}

broker_is_current() {
  [ -f "$TLS_DIR/broker.pem" ] && [ -f "$TLS_DIR/broker.crt" ] || return 1
  openssl x509 -in "$TLS_DIR/broker.crt" -noout -checkend "$RENEW_SECONDS" >/dev/null 2>&1 || return 1
  openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/broker.crt" >/dev/null 2>&1 || return 1
  # The names asked for now must all be in the certificate (TLS_SAN may have changed since it was made).
  local have; have=$(openssl x509 -in "$TLS_DIR/broker.crt" -noout -ext subjectAltName 2>/dev/null | tail -n +2)
  local name; for name in ${SAN//,/ }; do
    [[ $have == *"${name/IP:/IP Address:}"* ]] || return 1
  done
}

make_broker() {
  local work; work=$(mktemp -d "$TLS_DIR/.new.XXXXXX")
  run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/broker.key"
  run openssl req -new -key "$work/broker.key" -subj "/O=AI Mass/CN=aimass-kafka" -out "$work/broker.csr"
  cat >"$work/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$SAN
EOF
  run openssl x509 -req -in "$work/broker.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" -CAcreateserial \
    -CAserial "$TLS_DIR/ca.srl" -sha256 -days "$BROKER_DAYS" -extfile "$work/ext.cnf" -out "$work/broker.crt"
  # Kafka's PEM keystore: an unencrypted PKCS#8 key, then the chain from the broker's certificate to the CA.
  run openssl pkcs8 -topk8 -nocrypt -in "$work/broker.key" -out "$work/broker.p8"
  cat "$work/broker.p8" "$work/broker.crt" "$TLS_DIR/ca.pem" >"$work/broker.pem"
  chmod 600 "$work/broker.pem"
  chmod 644 "$work/broker.crt"
  mv "$work/broker.pem" "$TLS_DIR/broker.pem"
  mv "$work/broker.crt" "$TLS_DIR/broker.crt"
  rm -rf "$work"
}

[ -f "$TLS_DIR/ca.key" ] && [ -f "$TLS_DIR/ca.pem" ] || make_ca
broker_is_current || make_broker
