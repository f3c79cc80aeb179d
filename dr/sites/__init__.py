"""The sites' own operations (promote, demote, fence, rejoin, point the case service), apart from
the drills that rehearse them: `kntc-dr site` (commands) over what a site is (state)."""
