#!/usr/bin/env python3
"""A long chat completion request for bench/ab.sh (AB_BODY_FILE): the conversation of bench/limits.md's twelfth round.

18 messages, 33,041 characters of English-like prose from a fixed vocabulary (5,514 gpt-oss prompt tokens), the same
every run. Usage: python3 bench/long-conversation.py [characters] > /tmp/conversation.json
"""
import json
import random
import sys

WORDS = ("the ledger router pool settles each request within its minute and credits are reserved before answer streams "
         "back to customer quota of tokens is counted exactly once replica leases slices from Redis while Postgres keeps").split()

def main() -> None:
    target = int(sys.argv[1]) if len(sys.argv) > 1 else 32000
    rng = random.Random(14)
    messages = [{"role": "system", "content": "You are a careful assistant for Cortensor operators."}]
    chars = 0
    while chars < target:
        turn = " ".join(rng.choice(WORDS) for _ in range(rng.randint(150, 500))) + "."
        messages.append({"role": "user" if len(messages) % 2 == 1 else "assistant", "content": turn})
        chars += len(turn)
    messages.append({"role": "user", "content": "And the next question?"})
    json.dump({"model": "gpt-oss-20b", "messages": messages, "max_tokens": 16}, sys.stdout)

if __name__ == "__main__":
    main()
