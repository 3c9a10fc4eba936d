"""Pure decisions: what a kind's status should be, given what the handler observed. No API calls."""
