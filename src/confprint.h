/*
 * confprint.h - what `moat check` prints about a valid configuration: the
 * listeners, then per site the certificate source, the upstreams and who
 * may reach it, then per site with a client-certificate policy which
 * method+paths are public and which need a certificate.
 * Thread: any (reads an immutable snapshot).
 */
#ifndef MOAT_CONFPRINT_H
#define MOAT_CONFPRINT_H

#include <stdio.h>

struct conf;

void confprint_table(const struct conf *c, FILE *out);

#endif
