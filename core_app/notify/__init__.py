"""Citizens' notifications by SMS and e-mail, and the citizen's lookup by SMS (runbooks/sms-gateway.md).

- The outbox is filled by the database (migration 0013, `kntc.notify_capture`), in the transaction of
  the change, from the case's timeline; consent and channels are on the party.
- `worker`: `kntc notify deliver`, the outbox sent to the SMS gateway (`gateway`, the HTTP contract)
  and to the SMTP relay.
- `messages`: every text a citizen receives, from the outbox's facts alone.
- `sms_lookup`: the reply to "KNTC <case code> <lookup secret>" texted to the service number.
- `gateway_sim`: the provider's side of the contract, for the lab and the tests.
"""
