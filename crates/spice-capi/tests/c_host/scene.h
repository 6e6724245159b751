/*
 * SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * scene.h: the differential QXL scene (scene.c) as host.c drives it.
 */
#ifndef C_HOST_SCENE_H
#define C_HOST_SCENE_H

#include <stdint.h>
#include <spice.h>

/* The memslot group of the scene's guest RAM (QEMU's MEMSLOT_GROUP_GUEST). */
#define SCENE_GROUP 1

/* One JSON object per line on stdout (host.c). */
void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs a scene_* stdin command: 1 done, 0 failed, -1 not a scene command. */
int scene_command(QXLInstance *qxl, const char *name, const char *line);
/* The device's ring: the scene's next command, if any (worker thread). */
int scene_get_command(QXLCommandExt *ext);
/* A release of one of the scene's commands (group SCENE_GROUP). */
void scene_release(QXLReleaseInfoExt rext);
/* An async completion; 1 if the scene was waiting for it. */
int scene_async_complete(uint64_t cookie);
/* Whether a scene runs (update_area_complete is then expected). */
int scene_active(void);

#endif
