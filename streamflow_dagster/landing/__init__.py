"""Landing files: the contract, month discovery, validation, loading into raw, and the demo and
Telco generators that write landing months."""
