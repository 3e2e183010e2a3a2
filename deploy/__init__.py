"""`make deploy`: one stage of Dynavera rolled out to an AWS account, in order, re-runnable."""
