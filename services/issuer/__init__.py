"""The local stack's OAuth2 issuer: SMART Backend Services client credentials, ES256 access tokens, a JWKS."""
