#!/usr/bin/env bash
# Make the TLS material for a recsys_dist Dask cluster with mutual authentication:
#   ca.pem / ca-key.pem         the cluster's own certificate authority (keep ca-key.pem off the cluster)
#   cluster.pem / cluster-key.pem  scheduler and workers (server and client use)
#   client.pem / client-key.pem    jobs that submit work (client use only)
# Every party trusts only this CA, so a client without a certificate it signed is refused.
# Usage: deploy/make-certs.sh OUT_DIR [EXTRA_DNS_NAME ...]   (scheduler, localhost, 127.0.0.1 always included)
set -euo pipefail
out=${1:?usage: make-certs.sh OUT_DIR [DNS_NAME ...]}
shift
days=${CERT_DAYS:-365}
mkdir -p "$out"
cd "$out"
umask 077

san="DNS:scheduler,DNS:localhost,IP:127.0.0.1"
for name in "$@"; do san="$san,DNS:$name"; done

openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=recsys_dist cluster CA" \
    -keyout ca-key.pem -out ca.pem 2>/dev/null

issue() {  # issue NAME CN EXTENDED_KEY_USAGE
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$san" "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days "$days" \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue cluster "recsys_dist cluster" "serverAuth,clientAuth"
issue client "recsys_dist job" "clientAuth"
rm -f ca.srl
chmod 600 ./*-key.pem
chmod 644 ca.pem cluster.pem client.pem
echo "certificates in $out: ca.pem cluster.pem cluster-key.pem client.pem client-key.pem"
