"""Authentication pieces any service or edge can use alone: a JWT verifier backed by a JWKS, and the
local dev issuer that stands in for Amazon Cognito on one machine."""

from flotilla.auth.jwt import Claims, InvalidToken, JwksCache, TokenPolicy, TokenVerifier

__all__ = ["Claims", "InvalidToken", "JwksCache", "TokenPolicy", "TokenVerifier"]
