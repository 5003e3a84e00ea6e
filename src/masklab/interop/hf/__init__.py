"""Hugging Face converters: ViTMAE (:mod:`.mae`), BERT (:mod:`.bert`), GPT-2 (:mod:`.gpt2`), PatchTST
(:mod:`.patchtst`)."""
