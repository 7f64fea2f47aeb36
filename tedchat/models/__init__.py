"""Model files: the registry of known models, pulling from the Hub, converting checkpoints to
GGUF, and the prompt formats for models without a chat template.

``registry`` (which models tedchat knows and where their files are), ``hub`` (huggingface_hub
pulls), ``convert`` (safetensors -> GGUF -> quantised), ``prompt_formats`` (completion prompts).
"""
