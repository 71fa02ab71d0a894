#!/bin/bash
# Synthetic EE-LLM pre-training launch (written for eellm's tests, not copied from EE-LLM): 2 nodes
# of 8 GPUs, PP 4, two exits with every early-exit option that goes with post-layer exits, and
# bubble filling with explicit counts and ratio.
export CUDA_DEVICE_MAX_CONNECTIONS=1
NNODES=2
GPUS=8
LAYERS=24
CKPT=/ckpt/ee-train-fill

DIST="--nnodes $NNODES --nproc_per_node $GPUS --node_rank 0 --master_addr 10.0.0.1 --master_port 6000"

MODEL="
    --num-layers $LAYERS \
    --hidden-size 2048 \
    --num-attention-heads 16 \
    --seq-length 2048 \
    --max-position-embeddings 2048 \
    --tensor-model-parallel-size 1 \
    --pipeline-model-parallel-size 4 \
    --use-flash-attn \
    --disable-bias-linear \
    --normalization RMSNorm \
    --position-embedding-type rope \
    --swiglu \
    --untie-embeddings-and-output-weights \
    --bf16 \
"

EXITS="
    --exit-layer-nums 7 13 \
    --exit-layer-weight 0.25 0.5 \
    --exit-layer-weight-init 0.0 0.1 \
    --exit-layer-weight-warmup-iters 500 \
    --exit-layer-weight-warmup-style cosine \
    --exit-layer-temperature 1.0 0.8 \
    --use-exit-norm \
    --use-exit-mlp \
    --use-exit-block \
    --untie-exit-output-weights \
    --use-dynamic-exit-layer-weight \
    --fill-explicit-bubbles \
    --num-fill-warmup-microbatches 2 \
    --num-fill-cooldown-microbatches 1 \
    --backward-forward-ratio 3.0 \
"

TRAIN="
    --micro-batch-size 2 \
    --global-batch-size 256 \
    --train-iters 20000 \
    --lr 3e-4 \
    --min-lr 3.0e-5 \
    --lr-decay-style cosine \
    --lr-warmup-fraction .01 \
    --weight-decay 1e-1 \
    --clip-grad 1.0 \
    --recompute-granularity full \
    --recompute-method uniform \
    --recompute-num-layers 1 \
"

DATA="
    --data-path 0.6 /data/books 0.4 /data/web \
    --tokenizer-type SentencePieceTokenizer \
    --tokenizer-model /data/tokenizer.model \
    --split 990,9,1 \
    --log-interval 10 \
    --log-timers-to-tracker \
    --save-interval 1000 \
    --eval-interval 1000 \
    --eval-iters 10 \
    --wandb-project ee-test \
    --distributed-backend nccl \
"

torchrun $DIST pretrain_early_exit_gpt.py $MODEL $EXITS $TRAIN $DATA \
    --save $CKPT \
    --load $CKPT
