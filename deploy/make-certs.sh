#!/usr/bin/env bash
# Make the TLS material for a recsys_dist Dask cluster with mutual authentication:
#   OUT_DIR/ca.pem                     the cluster's own certificate authority (certificate only)
#   OUT_DIR/cluster.pem, cluster-key.pem  scheduler and workers (server and client use)
#   OUT_DIR/client.pem, client-key.pem    jobs that submit work (client use only)
#   CA_DIR/ca-key.pem                  the CA's private key, kept OUT of OUT_DIR so that uploading OUT_DIR
#                                      (kubectl create secret --from-file=OUT_DIR/) never ships it;
#                                      CA_DIR defaults to OUT_DIR-ca beside it. Keep it off the cluster.
# Every party trusts only this CA, so a client without a certificate it signed is refused.
# Usage: [CA_DIR=DIR] deploy/make-certs.sh OUT_DIR [EXTRA_DNS_NAME ...]   (scheduler, localhost, 127.0.0.1 always included)
set -euo pipefail
out=${1:?usage: make-certs.sh OUT_DIR [DNS_NAME ...]}
shift
out=${out%/}
ca_dir=${CA_DIR:-$out-ca}
days=${CERT_DAYS:-365}
mkdir -p "$out"
umask 077
mkdir -p "$ca_dir"
out=$(cd "$out" && pwd)
ca_key="$(cd "$ca_dir" && pwd)/ca-key.pem"
if [ "$(dirname "$ca_key")" = "$out" ]; then
    echo "make-certs.sh: CA_DIR must not be OUT_DIR ($out): the CA key would be uploaded with the certificates" >&2
    exit 2
fi
cd "$out"

san="DNS:scheduler,DNS:localhost,IP:127.0.0.1"
for name in "$@"; do san="$san,DNS:$name"; done

openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=recsys_dist cluster CA" \
    -keyout "$ca_key" -out ca.pem 2>/dev/null

issue() {  # issue NAME CN EXTENDED_KEY_USAGE
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$san" "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey "$ca_key" -CAcreateserial -days "$days" \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue cluster "recsys_dist cluster" "serverAuth,clientAuth"
issue client "recsys_dist job" "clientAuth"
rm -f ca.srl
chmod 600 ./*-key.pem "$ca_key"
chmod 644 ca.pem cluster.pem client.pem
echo "certificates in $out: ca.pem cluster.pem cluster-key.pem client.pem client-key.pem"
echo "CA key (keep it off the cluster; it signs new certificates): $ca_key"
