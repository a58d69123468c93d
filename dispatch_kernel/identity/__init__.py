"""Identity: organizations, service accounts (JWTs), policies, and authorize().

`IdentityManager` (core.identity) keeps them in the store and decides; `policies` compiles rules
into fast decisions; `tokens` verifies service accounts' JWTs.
"""

from .manager import ADMIN_POLICY, IdentityManager
from .policies import ACTIONS, Decision, PolicySet, Principal

__all__ = ["ACTIONS", "ADMIN_POLICY", "Decision", "IdentityManager", "PolicySet", "Principal"]
