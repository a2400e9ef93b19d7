/*
 * Control socket (vbridgectl): a UNIX stream socket; a client sends one
 * command line ("status"), gets one JSON document and a newline back, and
 * the connection closes. Requests are bounded in size and time.
 */
#ifndef VB_CONTROL_H
#define VB_CONTROL_H

#include <stddef.h>

struct node;
struct control;

struct control *control_new(struct node *n, const char *path, char *err, size_t errlen);
void control_free(struct control *c);

#endif
