#!/bin/bash
# Synthetic EE-LLM pre-training launch (for eellm's tests): pre-layer exits (EE-LLM refuses an exit
# MLP with --pre-exit, so none), tied exit heads, default fill counts; the node count comes from
# the launcher's WORLD_SIZE, which this script does not set.
NPROC_PER_NODE=8
TP=2
PP=2

torchrun \
    --nproc_per_node $NPROC_PER_NODE \
    --nnodes $WORLD_SIZE \
    --node_rank $RANK \
    pretrain_early_exit_gpt.py \
    --num-layers 16 \
    --hidden-size 1024 \
    --num-attention-heads 16 \
    --seq-length 1024 \
    --max-position-embeddings 1024 \
    --tensor-model-parallel-size $TP \
    --pipeline-model-parallel-size $PP \
    --sequence-parallel \
    --exit-layer-nums 5 9 \
    --exit-layer-weight 0.1 0.2 \
    --pre-exit \
    --use-exit-norm \
    --fill-explicit-bubbles \
    --micro-batch-size 4 \
    --global-batch-size 64 \
    --train-iters 1000 \
    --lr 0.0002 \
    --fp16 \
    --data-path /data/pile_text_document \
    --vocab-file /data/gpt2-vocab.json \
    --merge-file /data/gpt2-merges.txt \
    --tokenizer-type GPT2BPETokenizer \
    --split 949,50,1 \
    --no-gradient-accumulation-fusion \
    --save /ckpt/pre-exit
