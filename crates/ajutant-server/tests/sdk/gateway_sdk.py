"""Drives Ajutant's OpenAI-compatible gateway with the official `openai` SDK, as any tool in the
organisation would. BASE_URL and API_KEY come from the Rust test that started the server.
Exits non-zero, naming the failed check, if anything is not as the SDK's users would expect."""

import json
import os

import openai

BASE_URL = os.environ["BASE_URL"]
API_KEY = os.environ["API_KEY"]
client = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0, timeout=20)
question = [{"role": "user", "content": "Say hello."}]
weather_tool = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

models = [model.id for model in client.models.list()]
assert "offline" in models and "fake-chat" in models, models
assert "restricted" not in models, "a deployment the caller may not use is listed"

answer = client.chat.completions.create(model="fake-chat", messages=question)
assert answer.choices[0].message.content == "Hello from the fake.", answer
assert answer.model == "fake-chat", answer.model
assert answer.usage.prompt_tokens == 9 and answer.usage.total_tokens == 13, answer.usage

text, usage, finish = "", None, None
for chunk in client.chat.completions.create(
    model="fake-chat", messages=question, stream=True, stream_options={"include_usage": True}
):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage:
        usage = chunk.usage
assert text == "Hello from the fake.", text
assert finish == "stop", finish
assert usage is not None and usage.completion_tokens == 4, usage

called = client.chat.completions.create(
    model="fake-chat", messages=question, tools=[weather_tool], tool_choice="auto"
)
call = called.choices[0].message.tool_calls[0]
assert called.choices[0].finish_reason == "tool_calls", called
assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}

arguments, name = "", None
for chunk in client.chat.completions.create(
    model="fake-chat", messages=question, tools=[weather_tool], stream=True
):
    for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        name = delta.function.name or name
        arguments += delta.function.arguments or ""
assert name == "get_weather" and json.loads(arguments) == {"city": "Oslo"}, (name, arguments)

offline = client.chat.completions.create(model="offline", messages=question)
assert "No language model is configured" in offline.choices[0].message.content, offline

embedded = client.embeddings.create(model="fake-chat", input=["first", "second"])
assert [item.index for item in embedded.data] == [0, 1], embedded
assert embedded.data[1].embedding == [0.25, 1.0, 1.0], embedded.data[1].embedding
assert embedded.usage.prompt_tokens == 3

try:
    openai.OpenAI(base_url=BASE_URL, api_key="ajk_0000000000_not-a-key", max_retries=0).models.list()
    raise AssertionError("a bad key was accepted")
except openai.AuthenticationError as error:
    assert error.status_code == 401

try:
    client.chat.completions.create(model="no-such-model", messages=question)
    raise AssertionError("an unknown model answered")
except openai.NotFoundError as error:
    assert error.code == "model_not_found", error.code

try:
    client.chat.completions.create(model="restricted", messages=question)
    raise AssertionError("a deployment the caller may not use answered")
except openai.NotFoundError:
    pass

try:
    client.chat.completions.create(model="fake-limited", messages=question)
    raise AssertionError("a rate limit was not reported")
except openai.RateLimitError as error:
    assert error.response.headers.get("retry-after") == "7", error.response.headers

try:
    client.chat.completions.create(model="fake-chat", messages=[{"role": "wizard", "content": "x"}])
    raise AssertionError("a bad role was accepted")
except openai.BadRequestError as error:
    assert error.param == "messages" or "role" in str(error), error

try:
    for _ in client.chat.completions.create(model="fake-broken", messages=question, stream=True):
        pass
    raise AssertionError("a half-finished stream looked finished")
except openai.APIError as error:
    assert "ended before" in str(error), error

print("ok")
