"""Training core for Siamese heads over frozen backbone embeddings.

A small fully connected head (:mod:`.head`) is trained on pairs of rows of an embedding matrix
with a contrastive, triplet or cosine-BCE loss (:mod:`.losses`) by :func:`.loop.train_head`;
weights are stored as safetensors (:mod:`.checkpoint`) and training curves drawn by
:mod:`.curves`. Nothing here knows about protocols, folds or the CLI.
"""
