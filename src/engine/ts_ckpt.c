/* placeholder, replaced below */
#include "ts_ckpt.h"
#include "ts_weights.h"
int ts_ckpt_detect(const ts_weights *w)
{
    return ts_weights_find(w, "model.diffusion_model.input_blocks.0.0.weight") != NULL;
}
ts_status ts_ckpt_map(ts_weights *w, ts_ckpt_info *info, ts_error *err)
{
    return ts_error_set(err, TS_ERR_UNSUPPORTED, "single-file checkpoints are not mapped yet");
}
ts_status ts_ckpt_load(const char *path, ts_weights **out, ts_ckpt_info *info, ts_error *err)
{
    return ts_error_set(err, TS_ERR_UNSUPPORTED, "single-file checkpoints are not mapped yet");
}
