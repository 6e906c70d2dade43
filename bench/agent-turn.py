#!/usr/bin/env python3
"""A coding agent's turn for bench/ab.sh (AB_BODY_FILE): the request of bench/limits.md's thirteenth round.

A system prompt, ten tools with JSON-schema parameters, a user's task and two tool calls with their results: 4,910
bytes, 605 gpt-oss prompt tokens, the same every run. Usage: python3 bench/agent-turn.py > /tmp/agent.json
"""
import json


def function(name, description, properties, required):
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required, "additionalProperties": False}}}


def main() -> None:
    s, i, b = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
    tools = [
        function("read_file", "Read a file from the workspace and return its contents with line numbers.",
                 {"path": {**s, "description": "Path relative to the workspace root"}, "start_line": {**i, "description": "First line, 1-based"},
                  "end_line": {**i, "description": "Last line, inclusive"}}, ["path"]),
        function("write_file", "Create or overwrite a file.", {"path": s, "content": {**s, "description": "The whole new content"}}, ["path", "content"]),
        function("edit_file", "Replace an exact string in a file.", {"path": s, "old_string": s, "new_string": s, "replace_all": b},
                 ["path", "old_string", "new_string"]),
        function("search", "Search the workspace with a regular expression.",
                 {"pattern": s, "glob": {**s, "description": "Only files matching this glob"}, "case_sensitive": b, "max_results": i}, ["pattern"]),
        function("run_command", "Run a shell command and return stdout, stderr and exit code.",
                 {"command": s, "cwd": s, "timeout_seconds": {**i, "minimum": 1, "maximum": 600}, "env": {"type": "object", "additionalProperties": s}},
                 ["command"]),
        function("list_directory", "List a directory.", {"path": s, "recursive": b, "include_hidden": b}, ["path"]),
        function("web_fetch", "Fetch a URL and return it as markdown.", {"url": {**s, "format": "uri"}, "max_bytes": i}, ["url"]),
        function("create_issue", "File an issue in the tracker.",
                 {"title": s, "body": s, "labels": {"type": "array", "items": s}, "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]},
                  "assignee": {"type": ["string", "null"]}}, ["title", "body"]),
        function("query_database", "Run a read-only SQL query.",
                 {"sql": s, "params": {"type": "array", "items": {"anyOf": [s, i, b, {"type": "null"}]}}, "limit": i}, ["sql"]),
        function("send_message", "Post a message to a chat channel.",
                 {"channel": s, "text": s, "thread": {"type": "object", "properties": {"id": s, "broadcast": b}, "required": ["id"]}}, ["channel", "text"]),
    ]
    messages = [
        {"role": "system", "content": "You are a careful coding agent. Use the tools to inspect the repository before you change anything. Explain what you changed."},
        {"role": "user", "content": "The tests in tests/Billing fail since yesterday. Find out why and fix it."},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "run_command", "arguments": json.dumps({"command": "dotnet test tests/Billing --no-build"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Failed ChargesAreRoundedDown: expected 0.0000051 but was 0.0000052\nTotal tests: 48, failed: 1"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_2", "type": "function", "function": {
            "name": "search", "arguments": json.dumps({"pattern": "Math.Round", "glob": "src/**/*.cs"})}}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "src/Billing/Pricing.cs:42: return Math.Round(cost, 7, MidpointRounding.AwayFromZero);"},
    ]
    print(json.dumps({"model": "gpt-oss-20b", "messages": messages, "tools": tools, "max_tokens": 16}))


if __name__ == "__main__":
    main()
