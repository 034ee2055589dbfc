"""Thin triggers: parse the input, call a service from shared/, answer.

Every function is synchronous: the host runs each invocation on its own worker thread, and one
that needs Graph runs its coroutine with asyncio.run on a loop of its own. The storage SDK calls
block, so async functions sharing the host's single event loop would queue up behind each other.
"""
