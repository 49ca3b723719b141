"""Security of the bridge's own OPC UA clients: controllers, and tracking's link to a live building.

A real building's OPC UA server normally offers only signed and encrypted endpoints and asks for a
user name; a secured bridge does the same (bridge.security.server). ``configure_client`` applies a
``ClientSecurity`` (bridge.security.settings) to an asyncua client before it connects.
"""

from __future__ import annotations

import socket
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies, uacrypto
from cryptography import x509

from bridge.security.server import ensure_certificate, file_format, load_certificate
from bridge.security.settings import ClientSecurity

CLIENT_URI = "urn:twinbridge:client"


async def configure_client(client: Client, security: ClientSecurity) -> None:
    """Set identity and security policy on an unconnected asyncua client (SecurityError when the
    settings are wrong). For a secure policy without a pinned server certificate this opens one
    unsecured connection to read the server's endpoints (bounded by the client's timeout)."""
    if security.user:
        client.set_user(security.user)
        client.set_password(security.password())
    if not security.security:
        return
    policy, mode, certificate, private_key, server_certificate = security.parts()
    existing = certificate.exists()
    await ensure_certificate(certificate, private_key, CLIENT_URI, socket.gethostname(), client=True)
    client.application_uri = (application_uri(certificate) if existing else None) or CLIENT_URI
    def properties(path: Path) -> uacrypto.CertProperties:
        return uacrypto.CertProperties(path, extension=file_format(path))

    await client.set_security(getattr(security_policies, f"SecurityPolicy{policy}"), properties(certificate),
                              properties(private_key), server_certificate=server_certificate and properties(server_certificate),
                              mode=getattr(ua.MessageSecurityMode, mode))


def application_uri(certificate: Path) -> str | None:
    """The application URI in a certificate's subject alternative names (what the client must announce)."""
    try:
        names = load_certificate(certificate).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    return next(iter(names.get_values_for_type(x509.UniformResourceIdentifier)), None)
