/*
 * config_test.c - diffusers config parsing: the published SD 1.5 / 2.1
 * configs give the published head layouts, and unsupported or malformed
 * settings are refused naming the key.
 */
#include <string.h>

#include "ts_config.h"
#include "ts_test.h"

/* The diffusers configs of SD 1.5 and SD 2.1 (abridged to the keys that
 * matter; absent keys take diffusers' defaults). */
static const char *sd15_unet =
    "{\"_class_name\":\"UNet2DConditionModel\",\"act_fn\":\"silu\",\"attention_head_dim\":8,"
    "\"block_out_channels\":[320,640,1280,1280],\"center_input_sample\":false,"
    "\"cross_attention_dim\":768,\"down_block_types\":[\"CrossAttnDownBlock2D\","
    "\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\",\"DownBlock2D\"],"
    "\"downsample_padding\":1,\"flip_sin_to_cos\":true,\"freq_shift\":0,\"in_channels\":4,"
    "\"layers_per_block\":2,\"mid_block_scale_factor\":1,\"norm_eps\":1e-05,"
    "\"norm_num_groups\":32,\"out_channels\":4,\"sample_size\":64,\"up_block_types\":["
    "\"UpBlock2D\",\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\"]}";

static const char *sd21_unet =
    "{\"act_fn\":\"silu\",\"attention_head_dim\":[5,10,20,20],"
    "\"block_out_channels\":[320,640,1280,1280],\"cross_attention_dim\":1024,"
    "\"down_block_types\":[\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\","
    "\"CrossAttnDownBlock2D\",\"DownBlock2D\"],\"dual_cross_attention\":false,"
    "\"in_channels\":4,\"layers_per_block\":2,\"norm_num_groups\":32,\"num_class_embeds\":null,"
    "\"out_channels\":4,\"sample_size\":96,\"up_block_types\":[\"UpBlock2D\","
    "\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\"],"
    "\"upcast_attention\":true,\"use_linear_projection\":true}";

static void test_unet_heads(void)
{
    ts_error err;
    ts_unet_config c;
    TS_CHECK_INT_EQ(ts_unet_config_parse(sd15_unet, strlen(sd15_unet), &c, &err), TS_OK);
    TS_CHECK_INT_EQ(c.n_blocks, 4);
    TS_CHECK_INT_EQ(c.heads[0], 8); /* "attention_head_dim": 8 means 8 heads */
    TS_CHECK_INT_EQ(c.head_dim[0], 40);
    TS_CHECK_INT_EQ(c.head_dim[3], 160);
    TS_CHECK_INT_EQ(c.down_cross_attn[2], 1);
    TS_CHECK_INT_EQ(c.down_cross_attn[3], 0);
    TS_CHECK_INT_EQ(c.up_cross_attn[0], 0);
    TS_CHECK_INT_EQ(c.up_cross_attn[1], 1);
    TS_CHECK_INT_EQ(c.time_embed_dim, 1280);
    TS_CHECK_INT_EQ(c.use_linear_projection, 0);

    TS_CHECK_INT_EQ(ts_unet_config_parse(sd21_unet, strlen(sd21_unet), &c, &err), TS_OK);
    for (int i = 0; i < 4; i++) /* [5, 10, 20, 20] heads of 64 channels */
        TS_CHECK_INT_EQ(c.head_dim[i], 64);
    TS_CHECK_INT_EQ(c.heads[1], 10);
    TS_CHECK_INT_EQ(c.use_linear_projection, 1);
    TS_CHECK_INT_EQ(c.cross_attention_dim, 1024);

    /* num_attention_heads, when given, wins. */
    const char *nah = "{\"block_out_channels\":[64,128],\"attention_head_dim\":8,"
                      "\"num_attention_heads\":[2,4],\"down_block_types\":[\"DownBlock2D\","
                      "\"CrossAttnDownBlock2D\"],\"up_block_types\":[\"CrossAttnUpBlock2D\","
                      "\"UpBlock2D\"],\"mid_block_type\":\"UNetMidBlock2DCrossAttn\"}";
    TS_CHECK_INT_EQ(ts_unet_config_parse(nah, strlen(nah), &c, &err), TS_OK);
    TS_CHECK_INT_EQ(c.heads[0], 2);
    TS_CHECK_INT_EQ(c.head_dim[1], 32);
}

#define REFUSE(json, status, needle)                                                               \
    do {                                                                                           \
        ts_error e_;                                                                               \
        ts_unet_config c_;                                                                         \
        TS_CHECK_INT_EQ(ts_unet_config_parse(json, strlen(json), &c_, &e_), status);               \
        TS_CHECK(strstr(e_.message, needle) != NULL);                                              \
    } while (0)

static void test_unet_refusals(void)
{
    REFUSE("{\"block_out_channels\":[32],\"down_block_types\":[\"SimpleDown\"],"
           "\"up_block_types\":[\"UpBlock2D\"]}",
           TS_ERR_UNSUPPORTED, "SimpleDown");
    REFUSE("{\"class_embed_type\":\"timestep\"}", TS_ERR_UNSUPPORTED, "class_embed_type");
    REFUSE("{\"addition_embed_type\":\"text_time\"}", TS_ERR_UNSUPPORTED, "addition_embed_type");
    REFUSE("{\"act_fn\":\"mish\"}", TS_ERR_UNSUPPORTED, "act_fn");
    REFUSE("{\"mid_block_type\":\"UNetMidBlock2DSimpleCrossAttn\"}", TS_ERR_UNSUPPORTED,
           "mid_block_type");
    REFUSE("{\"block_out_channels\":[320,640],\"down_block_types\":[\"DownBlock2D\","
           "\"DownBlock2D\"],\"up_block_types\":[\"UpBlock2D\",\"UpBlock2D\"],"
           "\"transformer_layers_per_block\":[1,2],\"mid_block_type\":\"UNetMidBlock2DCrossAttn\"}",
           TS_ERR_UNSUPPORTED, "transformer_layers_per_block");
    REFUSE("{\"block_out_channels\":[30],\"down_block_types\":[\"DownBlock2D\"],"
           "\"up_block_types\":[\"UpBlock2D\"],\"mid_block_type\":\"UNetMidBlock2DCrossAttn\"}",
           TS_ERR_FORMAT, "norm_num_groups");
    REFUSE("{\"in_channels\":\"four\"}", TS_ERR_FORMAT, "in_channels");
    REFUSE("not json", TS_ERR_FORMAT, "JSON");
}

static void test_vae_and_clip(void)
{
    ts_error err;
    ts_vae_config v;
    const char *vae = "{\"block_out_channels\":[128,256,512,512],\"down_block_types\":["
                      "\"DownEncoderBlock2D\",\"DownEncoderBlock2D\",\"DownEncoderBlock2D\","
                      "\"DownEncoderBlock2D\"],\"latent_channels\":4,\"scaling_factor\":0.18215}";
    TS_CHECK_INT_EQ(ts_vae_config_parse(vae, strlen(vae), &v, &err), TS_OK);
    TS_CHECK_INT_EQ(v.n_blocks, 4);
    TS_CHECK_NEAR(v.scaling_factor, 0.18215, 1e-7);
    const char *bad =
        "{\"block_out_channels\":[128],\"up_block_types\":[\"AttnUpDecoderBlock2D\"]}";
    TS_CHECK_INT_EQ(ts_vae_config_parse(bad, strlen(bad), &v, &err), TS_ERR_UNSUPPORTED);
    TS_CHECK(strstr(err.message, "AttnUpDecoderBlock2D") != NULL);

    ts_clip_config c;
    const char *clip = "{\"hidden_size\":1024,\"num_attention_heads\":16,\"num_hidden_layers\":23,"
                       "\"intermediate_size\":4096,\"hidden_act\":\"gelu\"}";
    TS_CHECK_INT_EQ(ts_clip_config_parse(clip, strlen(clip), &c, &err), TS_OK);
    TS_CHECK_INT_EQ(c.act_gelu, 1);
    TS_CHECK_INT_EQ(c.layers, 23);
    const char *odd = "{\"hidden_size\":100,\"num_attention_heads\":16}";
    TS_CHECK_INT_EQ(ts_clip_config_parse(odd, strlen(odd), &c, &err), TS_ERR_FORMAT);
    const char *act = "{\"hidden_act\":\"relu\"}";
    TS_CHECK_INT_EQ(ts_clip_config_parse(act, strlen(act), &c, &err), TS_ERR_UNSUPPORTED);
    TS_CHECK(strstr(err.message, "hidden_act") != NULL);
}

int main(void)
{
    TS_RUN(test_unet_heads);
    TS_RUN(test_unet_refusals);
    TS_RUN(test_vae_and_clip);
    return ts_test_finish();
}
