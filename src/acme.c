/*
 * acme.c - see acme.h.
 */
#include "acme.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jws.h"
#include "log.h"
#include "util.h"

#define NONCE_RETRIES 5
#define ACME_MAX_BODY (256 * 1024)
#define ACME_TIMEOUT_MS 30000L
#define JOSE "application/jose+json"

static char *dir_url(json_t *dir, const char *key)
{
	const char *v = json_string_value(json_object_get(dir, key));

	return v != NULL ? xstrdup(v) : NULL;
}

int acme_client_open(struct acme_client *cl, const char *directory, const char *ca_roots,
		     const _Atomic bool *stop, char **err)
{
	struct httpc_resp r;
	json_error_t je;
	json_t *dir = NULL;
	int rc = MOAT_EIO;

	memset(cl, 0, sizeof(*cl));
	cl->directory = xstrdup(directory);
	cl->http.ca_roots = ca_roots;
	cl->http.timeout_ms = ACME_TIMEOUT_MS;
	cl->http.max_body = ACME_MAX_BODY;
	cl->http.stop = stop;
	cl->retry_after = -1;
	*err = NULL;
	if (httpc_request(&cl->http, "GET", directory, NULL, NULL, 0, &r, err) != 0)
		goto out;
	if (r.status != 200) {
		cl->status = r.status;
		cl->retry_after = r.retry_after;
		*err = xasprintf("the ACME directory %s answered HTTP %ld", directory, r.status);
		goto out;
	}
	dir = json_loadb(r.body, r.len, 0, &je);
	cl->new_nonce = dir_url(dir, "newNonce");
	cl->new_account = dir_url(dir, "newAccount");
	cl->new_order = dir_url(dir, "newOrder");
	cl->renewal_info = dir_url(dir, "renewalInfo");
	if (cl->new_nonce == NULL || cl->new_account == NULL || cl->new_order == NULL) {
		*err = xasprintf("%s is not an ACME directory (newNonce, newAccount or newOrder "
				 "missing)", directory);
		goto out;
	}
	rc = 0;
out:
	json_decref(dir);
	httpc_resp_free(&r);
	return rc;
}

void acme_client_free(struct acme_client *cl)
{
	free(cl->directory);
	free(cl->new_nonce);
	free(cl->new_account);
	free(cl->new_order);
	free(cl->renewal_info);
	free(cl->nonce);
	free(cl->kid);
	memset(cl, 0, sizeof(*cl));
}

static void keep_nonce(struct acme_client *cl, struct httpc_resp *r)
{
	if (r->nonce == NULL)
		return;
	free(cl->nonce);
	cl->nonce = r->nonce;
	r->nonce = NULL;
}

static int fresh_nonce(struct acme_client *cl, char **err)
{
	struct httpc_resp r;
	int rc;

	rc = httpc_request(&cl->http, "HEAD", cl->new_nonce, NULL, NULL, 0, &r, err);
	if (rc == 0 && r.nonce == NULL) {
		*err = xasprintf("%s gave no Replay-Nonce (HTTP %ld)", cl->new_nonce, r.status);
		rc = MOAT_EIO;
	}
	if (rc == 0)
		keep_nonce(cl, &r);
	httpc_resp_free(&r);
	return rc;
}

/* "urn:ietf:params:acme:error:rateLimited: too many ... (HTTP 429)" */
static char *problem_text(const struct httpc_resp *r, json_t *p)
{
	const char *type = json_string_value(json_object_get(p, "type"));
	const char *detail = json_string_value(json_object_get(p, "detail"));
	json_t *sub = json_array_get(json_object_get(p, "subproblems"), 0);
	const char *sdetail = json_string_value(json_object_get(sub, "detail"));
	const char *short_type = type;

	if (type != NULL && strncmp(type, "urn:ietf:params:acme:error:", 27) == 0)
		short_type = type + 27;
	return xasprintf("%s: %s%s%s (HTTP %ld)", short_type != NULL ? short_type : "error",
			 detail != NULL ? detail : "no detail",
			 sdetail != NULL ? "; " : "", sdetail != NULL ? sdetail : "", r->status);
}

static bool is_json(const struct httpc_resp *r)
{
	return r->content_type != NULL && (strstr(r->content_type, "json") != NULL);
}

/* 0 for a success status; else MOAT_EIO with the problem in *err. */
static int judge(struct acme_client *cl, const char *url, struct httpc_resp *r, json_t **json,
		 char **err)
{
	json_error_t je;
	json_t *j = NULL;

	if (is_json(r) && r->len > 0)
		j = json_loadb(r->body, r->len, 0, &je);
	if (r->status >= 400) {
		cl->status = r->status;
		cl->retry_after = r->retry_after;
		*err = j != NULL ? problem_text(r, j) :
			xasprintf("%s answered HTTP %ld", url, r->status);
		json_decref(j);
		return MOAT_EIO;
	}
	*json = j;
	return 0;
}

static bool is_bad_nonce(const struct httpc_resp *r)
{
	return r->status == 400 && strstr(r->body, "urn:ietf:params:acme:error:badNonce") != NULL;
}

int acme_post(struct acme_client *cl, const char *url, const char *payload,
	      struct httpc_resp *r, json_t **json, char **err)
{
	char *body = NULL;
	int rc = MOAT_EIO, tries;

	*json = NULL;
	*err = NULL;
	memset(r, 0, sizeof(*r));
	cl->retry_after = -1;
	cl->status = 0;
	for (tries = 0; tries <= NONCE_RETRIES; tries++) {
		if (cl->nonce == NULL && fresh_nonce(cl, err) != 0)
			goto out;
		body = jws_sign(cl->key, cl->kid, cl->nonce, url, payload);
		free(cl->nonce);
		cl->nonce = NULL;
		if (body == NULL) {
			*err = xstrdup("cannot sign the request (see the log)");
			goto out;
		}
		httpc_resp_free(r);
		rc = httpc_request(&cl->http, "POST", url, JOSE, body, strlen(body), r, err);
		free(body);
		body = NULL;
		if (rc != 0)
			goto out;
		keep_nonce(cl, r);
		if (!is_bad_nonce(r))
			break;
		log_info("acme: %s rejected a nonce; retrying with a fresh one", url);
	}
	rc = judge(cl, url, r, json, err);
out:
	return rc;
}

int acme_get(struct acme_client *cl, const char *url, struct httpc_resp *r, json_t **json,
	     char **err)
{
	int rc;

	*json = NULL;
	*err = NULL;
	cl->retry_after = -1;
	cl->status = 0;
	rc = httpc_request(&cl->http, "GET", url, NULL, NULL, 0, r, err);
	if (rc != 0)
		return rc;
	return judge(cl, url, r, json, err);
}

int acme_account(struct acme_client *cl, EVP_PKEY *key, const char *kid, const char *email,
		 char **err)
{
	struct httpc_resp r;
	json_t *req, *j = NULL;
	char *payload;
	int rc;

	cl->key = key;
	free(cl->kid);
	cl->kid = NULL;
	*err = NULL;
	if (kid != NULL) {
		cl->kid = xstrdup(kid);
		return 0;
	}
	req = json_pack("{s:b}", "termsOfServiceAgreed", 1);
	if (email != NULL) {
		char *mailto = xasprintf("mailto:%s", email);

		json_object_set_new(req, "contact", json_pack("[s]", mailto));
		free(mailto);
	}
	payload = json_dumps(req, JSON_COMPACT);
	rc = acme_post(cl, cl->new_account, payload, &r, &j, err);
	if (rc == 0 && r.location == NULL) {
		*err = xasprintf("%s created no account URL (no Location)", cl->new_account);
		rc = MOAT_EIO;
	}
	if (rc == 0) {
		cl->kid = r.location;
		r.location = NULL;
	}
	free(payload);
	json_decref(req);
	json_decref(j);
	httpc_resp_free(&r);
	return rc;
}

int acme_parse_time(const char *s, long long *out)
{
	struct tm tm;
	const char *p;
	int oh = 0, om = 0;
	long long t;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL)
		return MOAT_EINVAL;
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL)
		return MOAT_EINVAL;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	t = (long long)timegm(&tm);
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2) {
		t -= (*p == '+' ? 1 : -1) * (oh * 3600LL + om * 60LL);
		p += 6;
	} else {
		return MOAT_EINVAL;
	}
	if (*p != '\0')
		return MOAT_EINVAL;
	*out = t;
	return 0;
}
