#!/bin/bash
# Synthetic EE-Tuning launch (for eellm's tests): one exit at the end of stage 0 of a frozen
# 40-layer backbone, and only that stage loaded (--tune-exit-pipeline-parallel-size 1).
torchrun --nproc_per_node 8 --nnodes 1 pretrain_early_exit_gpt.py \
    --tensor-model-parallel-size 1 \
    --pipeline-model-parallel-size 4 \
    --num-layers 40 \
    --hidden-size 5120 \
    --num-attention-heads 40 \
    --ffn-hidden-size 13824 \
    --seq-length 2048 \
    --max-position-embeddings 2048 \
    --micro-batch-size 4 \
    --global-batch-size 16 \
    --lr 0.0001 \
    --train-iters 2000 \
    --bf16 \
    --disable-bias-linear \
    --use-flash-attn \
    --normalization RMSNorm \
    --position-embedding-type rope \
    --swiglu \
    --exit-layer-nums 10 \
    --use-exit-norm \
    --use-exit-mlp \
    --untie-embeddings-and-output-weights \
    --untie-exit-output-weights \
    --padded-vocab-size 32000 \
    --finetune \
    --tune-exit-pipeline-parallel-size 1 \
    --tune-exit \
    --data-path /data/redpajama \
    --tokenizer-type Llama2Tokenizer \
    --tokenizer-model /data/tokenizer.model \
    --split 990,9,1 \
    --load /ckpt/llama-40l-1-exit \
    --save /ckpt/tuned-1-exit
