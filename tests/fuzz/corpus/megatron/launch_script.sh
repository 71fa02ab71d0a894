#!/bin/bash
export CUDA_DEVICE_MAX_CONNECTIONS=1
NPROC_PER_NODE=8
NNODES=${NNODES:-2}
TP=1
PP=4
SAVE_INTERVAL=$(( 240 * 10 )) # 10B tokens
TRAIN_ITER=$(( $SAVE_INTERVAL * 30 ))
RUN_NAME=`date "+%m%d-%H%M"`
DATA_PATH="\
    0.25 /data/arxiv \
    0.75 /data/c4 \
"
GPT_ARGS="
    --tensor-model-parallel-size $TP \
    --pipeline-model-parallel-size $PP \
    --num-layers 24 --hidden-size 2048 \
    --num-attention-heads 32 --seq-length 2048 --max-position-embeddings 2048 \
    --micro-batch-size 4 --global-batch-size 2048 \
    --lr 0.0003 --min-lr 3.0e-5 --lr-decay-style cosine --lr-warmup-iters 2000 \
    --train-iters $TRAIN_ITER --weight-decay 1e-1 --adam-beta1 0.9 --adam-beta2 0.95 \
    --init-method-std 0.01 --clip-grad 1.0 --bf16 --disable-bias-linear --use-flash-attn \
    --normalization RMSNorm --position-embedding-type rope --swiglu \
    --untie-embeddings-and-output-weights --sequence-parallel
"
EE_ARGS='--exit-layer-nums 7 13 --exit-layer-weight 0.25 0.5 --pre-exit --untie-exit-output-weights'
CUR_DIR=$(cd $(dirname "$0") && pwd)
cd $CUR_DIR
torchrun --nproc_per_node $NPROC_PER_NODE --nnodes $NNODES pretrain_early_exit_gpt.py \
    $GPT_ARGS $EE_ARGS \
    --data-path $DATA_PATH --tokenizer-type SentencePieceTokenizer --split 990,9,1 \
    --log-interval 2 --save-interval $SAVE_INTERVAL --eval-interval 1200 --eval-iters 10 \
    --save /ckpt --load /ckpt --wandb-project ee --frobnicate 3 > train.log 2>&1
