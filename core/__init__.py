"""The domain both services share: issuance, revocation, holds, and the rules behind them."""
