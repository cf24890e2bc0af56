/*
 * ts_together.h - the together shot's layout: the people from 1-4 photos
 * side by side on one canvas, and a mask that repaints everything around
 * them.
 *
 *     ts_image canvas = {0}, mask = {0};
 *     ts_together_compose(photos, 3, 512, 512, &canvas, &mask, &err);
 *     p.init_image = &canvas;
 *     p.mask = &mask;
 *     p.strength = 1.0f;   // the scene comes entirely from the prompt
 *     ts_generate(model, &p, ...);
 *
 * Layout: the canvas is cut into n equal columns; each photo is scaled to
 * fit its column (aspect kept) and centred. The keep region of each photo is
 * a soft ellipse centred on the photo, 70% of its width and 85% of its
 * height, with a feathered edge (mask 0 inside = keep, rising smoothly to
 * 255 = repaint at the ellipse's border); everything else is repainted.
 *
 * Limit, stated plainly: there is no person segmentation here, so the
 * ellipse assumes the subject is roughly centred in each photo. Background
 * inside the ellipse is kept and people reaching outside it are partly
 * repainted.
 *
 * Ownership: canvas and mask must be empty on entry; the caller frees them
 * with ts_image_free (they hold user pixels).
 */
#ifndef TS_TOGETHER_H
#define TS_TOGETHER_H

#include "ts_error.h"
#include "ts_image.h"

#define TS_TOGETHER_MAX_PHOTOS 4

ts_status ts_together_compose(const ts_image *photos, int n, int width, int height,
                              ts_image *canvas, ts_image *mask, ts_error *err);

#endif
