"""OPC UA security of the bridge and of its clients (docs/security.md).

- ``users``: user accounts with roles (viewer, operator) and PBKDF2 password hashes;
- ``server``: certificates, security policies, trusted client applications, user authentication
  and role-based access on the bridge's OPC UA server;
- ``client``: the same policies and identities for the bridge's own clients (controllers, tracking).
"""

from bridge.security.users import ROLES, SecurityError, User, hash_password, load_users, verify_password

__all__ = ["ROLES", "SecurityError", "User", "hash_password", "load_users", "verify_password"]
