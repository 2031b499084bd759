"""Who may call the admission webhooks: kube-apiserver, proven by a client certificate.

kube-apiserver can present a client certificate to a webhook (an ``AdmissionConfiguration`` with a
kubeconfig whose user is named after the webhook's host, ``mcs-apiserver.mcs-system.svc[:port]``).
With ``serve --webhook-client-ca-file`` (and optionally ``--webhook-allowed-names``) a webhook call
without such a certificate is answered 401 before its body is read: an anonymous TLS client can
then neither make the server buffer anything nor learn what other clusters export from a denial.

Without the flag every TLS client may call the webhooks, as before (the AdmissionReview states the
user; a cluster whose kube-apiserver cannot present a certificate still works).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography import x509

from mcs_apiserver.auth.authenticate import allows_client_auth, common_name, verify_chain

__all__ = ["WebhookCallers"]


@dataclass(frozen=True, slots=True)
class _Verdict:
    allowed: bool
    not_before: float = 0.0
    not_after: float = 0.0


class WebhookCallers:
    """Checks the TLS client certificate of a webhook call: issued directly by one of ``ca_pem``'s
    certificates (:func:`~mcs_apiserver.auth.authenticate.verify_chain`: the TLS handshake accepts
    any certificate), usable for client authentication, currently valid, and with a common name in
    ``allowed_names`` (any name when empty). Verdicts are cached per certificate."""

    def __init__(self, ca_pem: bytes, allowed_names: Iterable[str] = (), *,
                 clock: Callable[[], float] = time.time, max_entries: int = 1024) -> None:
        self.cas = tuple(x509.load_pem_x509_certificates(ca_pem))  # ValueError: not a CA bundle
        self.ca_pem = ca_pem
        self.allowed_names = frozenset(n for n in allowed_names if n)
        self._clock = clock
        self._max_entries = max_entries
        self._verdicts: dict[bytes, _Verdict] = {}

    def allows(self, der: bytes | None) -> bool:
        if not der:
            return False
        digest = hashlib.sha256(der).digest()
        verdict = self._verdicts.get(digest)
        if verdict is None:
            verdict = self._verify(der)
            if len(self._verdicts) >= self._max_entries:
                del self._verdicts[next(iter(self._verdicts))]
            self._verdicts[digest] = verdict
        return verdict.allowed and verdict.not_before <= self._clock() <= verdict.not_after

    def _verify(self, der: bytes) -> _Verdict:
        try:
            cert = x509.load_der_x509_certificate(der)
            if not allows_client_auth(cert) or (self.allowed_names and common_name(cert) not in self.allowed_names):
                return _Verdict(False)
            window = verify_chain(cert, self.cas)
        except ValueError:
            return _Verdict(False)
        return _Verdict(False) if window is None else _Verdict(True, *window)
