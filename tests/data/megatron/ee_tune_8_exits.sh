#!/bin/bash
# Synthetic EE-Tuning launch (for eellm's tests): a frozen 40-layer Llama-style backbone, 8 exits
# with one after the last layer, every stage loaded.
LOAD=/ckpt/llama-40l-8-exit
SAVE=/ckpt/tuned-8-exit

torchrun --nproc_per_node 8 --nnodes 1 pretrain_early_exit_gpt.py \
    --tensor-model-parallel-size 1 \
    --pipeline-model-parallel-size 4 \
    --query-key-layer-scaling \
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
    --min-lr 1.0e-5 \
    --lr-warmup-fraction .01 \
    --adam-beta1 0.9 \
    --adam-beta2 0.95 \
    --adam-eps 1e-5 \
    --bf16 \
    --disable-bias-linear \
    --use-flash-attn \
    --normalization RMSNorm \
    --position-embedding-type rope \
    --swiglu \
    --exit-layer-nums 5 10 15 20 25 30 35 40 \
    --use-exit-norm \
    --use-exit-mlp \
    --untie-embeddings-and-output-weights \
    --untie-exit-output-weights \
    --padded-vocab-size 32000 \
    --finetune \
    --tune-exit-pipeline-parallel-size 4 \
    --tune-exit \
    --data-path /data/redpajama \
    --tokenizer-type Llama2Tokenizer \
    --tokenizer-model /data/tokenizer.model \
    --split 990,9,1 \
    --log-interval 10 \
    --save-interval 20000 \
    --eval-interval 50000 \
    --eval-iters 1 \
    --load $LOAD \
    --save $SAVE
