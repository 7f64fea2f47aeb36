"""A scripted engine plugin for bench tests, installed into a test's local plugin folder.

Engine type ``scripted``: it streams ``words`` one-token words (``delay`` seconds apart), and
can be told to fail on given calls (``fail_on = "2,4"``: an EngineError after two words;
``crash_on``: a RuntimeError, i.e. a buggy plugin), to fail to load, to declare and keep
``last_token_ids``, to declare and offer ``reset_cache()`` and to report emulated timings.
Sampling follows the parameters like a real engine: temperature 0 is deterministic, a seed makes
sampling repeatable, no seed makes it vary.
"""

import asyncio
import random
import zlib

import tedchat

VOCAB = ["alpha", "beta", "gamma", "delta", "eta", "theta", "iota", "kappa", "mu", "nu"]


class ScriptedEngine:
    local = False

    def __init__(self, name, settings, runtime):
        self.name, self.type, self.model = name, "scripted", "script-1"
        self.settings = settings
        self.calls = 0
        self.resets = 0
        self.capabilities = tedchat.Capabilities(token_ids=bool(settings["token_ids"]))
        if settings["token_ids"]:
            self.last_token_ids = []

    def _calls(self, key):
        return {int(n) for n in self.settings[key].split(",") if n.strip()}

    async def load(self, progress=None):
        if self.settings["fail_load"]:
            raise tedchat.ModelNotFoundError("model file not found: /nowhere/scripted.gguf")

    async def stream(self, messages, params):
        self.calls += 1
        call = self.calls
        if self.settings["token_ids"]:
            self.last_token_ids = []
        temperature = 0.7 if params.temperature is None else params.temperature
        if temperature == 0:
            rng = random.Random(zlib.crc32(messages[-1].content.encode()))
        elif params.seed is not None:
            rng = random.Random(params.seed)
        else:
            rng = random.Random()
        n = min(self.settings["words"], params.max_tokens)
        for i in range(n):
            if i == 2 and call in self._calls("fail_on"):
                raise tedchat.ServerError(f"scripted failure on call {call}")
            if i == 2 and call in self._calls("crash_on"):
                raise RuntimeError(f"scripted crash on call {call}")
            await asyncio.sleep(self.settings["delay"])
            word = rng.choice(VOCAB)
            if self.settings["token_ids"]:
                self.last_token_ids.append(VOCAB.index(word))
            yield tedchat.TextDelta(word if i == 0 else " " + word, tokens=1)
        yield tedchat.Usage(prompt_tokens=5, output_tokens=n, source="engine")
        if self.settings["emulated"]:
            yield tedchat.EmulatedTimings(
                hardware="CS-3",
                systems=4,
                ttft_s=0.002,
                output_tokens_per_s=2000.0,
                timing_target="llama-3.1-70b",
            )
        yield tedchat.Done("length" if n == params.max_tokens else "stop")

    async def status(self):
        return tedchat.EngineStatus(True, "scripted")

    def describe(self):
        return {"words": self.settings["words"], "api_key": self.settings["api_key"]}

    async def close(self):
        pass


class ResettableEngine(ScriptedEngine):
    def __init__(self, name, settings, runtime):
        super().__init__(name, settings, runtime)
        self.capabilities = tedchat.Capabilities(
            cache_reset=True, token_ids=bool(settings["token_ids"])
        )

    async def reset_cache(self):
        self.resets += 1


def make(name, settings, runtime):
    cls = ResettableEngine if settings["resettable"] else ScriptedEngine
    return cls(name, settings, runtime)


@tedchat.hookimpl
def register_engine_types(register):
    register(
        tedchat.EngineType(
            name="scripted",
            factory=make,
            settings={
                "words": 12,
                "delay": 0.002,
                "fail_on": "",
                "crash_on": "",
                "fail_load": False,
                "token_ids": False,
                "resettable": True,
                "emulated": False,
                "api_key": "",
            },
        )
    )
