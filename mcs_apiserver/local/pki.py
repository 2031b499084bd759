"""The certificates a local ClusterSet needs, generated once per state directory.

One cluster CA signs every member's kube-apiserver serving certificate and every client
certificate (admin, controller managers, schedulers, kwok; the mcs-apiserver instances use the
ServiceAccount tokens ``mcs-apiserver install`` makes), so one
kubeconfig can reach all members. The front-proxy CA is separate, as kube-apiserver requires: the
requestheader CA must not be the client CA, or any client certificate could assert X-Remote-*
identities. The
mcs-apiserver serving certificate has its own CA, whose bundle goes into the APIService and webhook
configurations, exactly as a user deploying the manifests would do it. kube-apiserver presents a
client certificate of a CA of its own to the webhooks (see ``controlplane.webhook_admission_config``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from certs import pki

#: The Service an instance is registered under in each member (an ExternalName to localhost).
MCS_SERVICE = "mcs-apiserver"
MCS_NAMESPACE = "mcs-system"
#: The name kube-apiserver's webhook client certificate carries (``serve --webhook-allowed-names``).
WEBHOOK_CLIENT_NAME = "kube-apiserver-webhook-client"


@dataclass(frozen=True)
class LocalPKI:
    root: Path

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def ca_cert(self) -> Path:
        return self.path("ca.crt")

    @property
    def front_proxy_ca_cert(self) -> Path:
        return self.path("front-proxy-ca.crt")

    @property
    def mcs_ca_cert(self) -> Path:
        return self.path("mcs-apiserver-ca.crt")

    @property
    def webhook_client_ca_cert(self) -> Path:
        """The CA of the certificate kube-apiserver presents to the webhooks (``serve
        --webhook-client-ca-file``); it signs nothing else, so it proves nothing else."""
        return self.path("webhook-client-ca.crt")

    def cert(self, name: str) -> Path:
        return self.path(f"{name}.crt")

    def key(self, name: str) -> Path:
        return self.path(f"{name}.key")


def _write(ca: pki.CertKey, name: str, root: Path) -> None:
    pki.write_cert_key(ca, root / f"{name}.crt", root / f"{name}.key", overwrite=True)


def generate(root: Path, members: list[tuple[str, str]]) -> LocalPKI:
    """Create every certificate; ``members`` are (name, first service IP) pairs."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    ca = pki.new_ca("mcs-apiserver-local-cluster-ca")
    _write(ca, "ca", root)
    front_proxy_ca = pki.new_ca("mcs-apiserver-local-front-proxy-ca")
    _write(front_proxy_ca, "front-proxy-ca", root)
    mcs_ca = pki.new_ca("mcs-apiserver-local-serving-ca")
    _write(mcs_ca, "mcs-apiserver-ca", root)

    _write(pki.issue_client_cert(front_proxy_ca, common_name="front-proxy-client"),
           "front-proxy-client", root)
    webhook_client_ca = pki.new_ca("mcs-apiserver-local-webhook-client-ca")
    _write(webhook_client_ca, "webhook-client-ca", root)
    _write(pki.issue_client_cert(webhook_client_ca, common_name=WEBHOOK_CLIENT_NAME), "webhook-client", root)
    _write(pki.issue_client_cert(ca, common_name="kubernetes-admin", organizations=["system:masters"]),
           "admin", root)
    _write(pki.issue_client_cert(ca, common_name="system:kube-controller-manager"),
           "kube-controller-manager", root)
    _write(pki.issue_client_cert(ca, common_name="system:kube-scheduler"), "kube-scheduler", root)
    # kwok plays the kubelet of every simulated node (Node and Pod status, Leases, pod deletion),
    # which no single bootstrap role covers without the Node authorizer: admin, as kwokctl does it.
    _write(pki.issue_client_cert(ca, common_name="system:kwok", organizations=["system:masters"]), "kwok", root)

    sa_key = pki.new_private_key("rsa")
    pki.write_private_key(sa_key, root / "service-account.key", overwrite=True)
    pki.write_public_key(sa_key, root / "service-account.pub", overwrite=True)

    for name, service_ip in members:
        dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local"]
        ips = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address(service_ip)]
        _write(pki.issue_serving_cert(ca, common_name=f"{name}-kube-apiserver", dns_names=dns,
                                      ip_addresses=ips), f"{name}-apiserver", root)

    dns, ips = pki.serving_names(MCS_SERVICE, MCS_NAMESPACE)
    _write(pki.issue_serving_cert(mcs_ca, common_name=f"{MCS_SERVICE}.{MCS_NAMESPACE}.svc",
                                  dns_names=dns, ip_addresses=ips), "mcs-apiserver-serving", root)
    return LocalPKI(root)


def mcs_ca_bundle(local_pki: LocalPKI) -> str:
    return pki.ca_bundle(pki.load_certificate(local_pki.mcs_ca_cert))
