"""The paper's prompts as text files (no modules): `cot.txt`, `expansion.txt`,
`expansion_hint.txt`, `hint.txt`, `critic.txt`, `verify.txt`, and the plain templates
`plain.txt` and `metamath_alpaca.txt`. Read and filled by :mod:`rest_mcts.prompting.templates`.
"""
