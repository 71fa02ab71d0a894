L=$(( (4 + 4) * 3 / 2 % 100 - -8 ))
H=$((L*64))
torchrun --nproc_per_node 4 --nnodes ${NNODES:-1} pretrain_early_exit_gpt.py --num-layers $L --hidden-size "$H" --num-attention-heads 8 \
  --seq-length 512 --micro-batch-size 1 --global-batch-size 64 --exit-layer-nums 4 8 --exit-layer-weight 0.1 0.2 \
  --pipeline-model-parallel-size 2 --virtual-pipeline-model-parallel-size 2 --fp16 # comment
