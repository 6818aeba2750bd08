"""The domain both services share: issuance, revocation, holds, name policy and domain
authorizations, and the rules behind them."""
