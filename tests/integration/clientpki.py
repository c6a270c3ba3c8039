"""
clientpki - a small client-certificate PKI for moat's integration tests
(run with /usr/bin/python3: uses Debian's python3-cryptography).

    pki = ClientPki(directory)
    ca = pki.ca("client CA")                       # CA: .cert (path) .name .key_obj .cert_obj
    phone = pki.leaf("phone", ca)                  # Leaf: .cert .key .der .sha256 .serial .cn
    old = pki.leaf("old", ca, not_after=-1)        # expired a day ago (days relative to now)
    soon = pki.leaf("soon", ca, not_before=+1)     # not valid before tomorrow
    none = pki.leaf("noeku", ca, eku=None)         # no extendedKeyUsage extension at all
    srv = pki.leaf("srv", ca, eku=["server"])      # serverAuth only
    me = pki.self_signed("selfie")                 # clientAuth EKU, issuer == subject
    pki.write_crl(path, ca, revoked=[phone])       # atomically (temp file + os.replace)
    pki.write_crl(path, ca, next_update=-1)        # nextUpdate a day ago
    pki.crl_pem(ca, revoked, next_update_seconds=3)  # bytes; nextUpdate in 3 s

Every key is ECDSA P-256; every CA has basicConstraints CA:TRUE (critical)
and keyUsage keyCertSign + cRLSign (critical). Times are relative to now,
in days unless said otherwise; "now" is backdated 5 minutes so that a
fresh certificate is valid at once.
"""

import datetime
import hashlib
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

EKU = {"client": ExtendedKeyUsageOID.CLIENT_AUTH, "server": ExtendedKeyUsageOID.SERVER_AUTH}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, data, mode=0o644):
    tmp = path + ".tmp-%d" % os.getpid()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class CA:
    def __repr__(self):
        return "CA(%s)" % self.name


class Leaf:
    def __repr__(self):
        return "Leaf(CN=%s, serial=%X)" % (self.cn, self.serial)


class ClientPki:
    def __init__(self, directory):
        self.dir = directory

    def path(self, name):
        return os.path.join(self.dir, name)

    # ------------------------------------------------------------ CAs

    def ca(self, cn, days=365, stem=None):
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now() - datetime.timedelta(minutes=5)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256()))
        c = CA()
        c.name = cn
        c.key_obj, c.cert_obj = key, cert
        stem = stem or cn.replace(" ", "-")
        c.cert = self.path(stem + ".pem")
        c.key = self.path(stem + ".key")
        _write(c.cert, cert.public_bytes(serialization.Encoding.PEM))
        _write(c.key, _key_pem(key), 0o600)
        return c

    # ------------------------------------------------------------ leaves

    def leaf(self, cn, ca, eku=("client",), not_before=None, not_after=None, days=30,
             stem=None, subject=None, serial=None, not_after_seconds=None):
        """A leaf for CN=cn signed by ca (a CA, or None: self-signed).
        not_before/not_after: days relative to now (default -1 / +days).
        eku: names from EKU ("client", "server"), or None for no extension.
        subject: an x509.Name to use instead of CN=cn; serial: a fixed serial;
        not_after_seconds: expiry in that many seconds from now (exact)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now() - datetime.timedelta(minutes=5)
        nb = now + datetime.timedelta(days=not_before if not_before is not None else -1)
        na = now + datetime.timedelta(days=not_after if not_after is not None else days)
        if not_after_seconds is not None:
            na = _now() + datetime.timedelta(seconds=not_after_seconds)
        if ca is None:
            issuer, sign_key = _name(cn), key
        else:
            issuer, sign_key = ca.cert_obj.subject, ca.key_obj
        subject = subject if subject is not None else _name(cn)
        if ca is None:
            issuer = subject
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(key.public_key())
             .serial_number(serial if serial is not None else x509.random_serial_number())
             .not_valid_before(nb).not_valid_after(na)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=False,
                                          crl_sign=False, encipher_only=False,
                                          decipher_only=False), critical=True))
        if eku is not None:
            b = b.add_extension(x509.ExtendedKeyUsage([EKU[e] for e in eku]), critical=False)
        if ca is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key_obj.public_key()), critical=False)
        cert = b.sign(sign_key, hashes.SHA256())
        lf = Leaf()
        lf.cn = cn
        lf.key_obj, lf.cert_obj = key, cert
        stem = stem or cn
        lf.cert, lf.key = self.path(stem + ".crt"), self.path(stem + ".key")
        _write(lf.cert, cert.public_bytes(serialization.Encoding.PEM))
        _write(lf.key, _key_pem(key), 0o600)
        lf.der = cert.public_bytes(serialization.Encoding.DER)
        lf.sha256 = hashlib.sha256(lf.der).hexdigest()
        lf.serial = cert.serial_number
        lf.not_after = na
        return lf

    def self_signed(self, cn, eku=("client",)):
        return self.leaf(cn, None, eku=eku)

    # ------------------------------------------------------------ CRLs

    def crl_pem(self, ca, revoked=(), next_update=30, next_update_seconds=None,
                last_update=-1):
        """PEM CRL signed by ca listing the serials of revoked (Leaf or int).
        next_update: days from now (negative: in the past), or
        next_update_seconds: seconds from now."""
        now = _now()
        lu = now + datetime.timedelta(days=last_update)
        if next_update_seconds is not None:
            nu = now + datetime.timedelta(seconds=next_update_seconds)
        else:
            nu = now + datetime.timedelta(days=next_update)
        if nu <= lu:
            lu = nu - datetime.timedelta(days=1)
        b = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert_obj.subject)
             .last_update(lu).next_update(nu)
             .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 ca.key_obj.public_key()), critical=False))
        for r in revoked:
            serial = r if isinstance(r, int) else r.serial
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(now - datetime.timedelta(minutes=1)).build())
        crl = b.sign(ca.key_obj, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)

    def write_crl(self, path, ca, revoked=(), **kw):
        _write(path, self.crl_pem(ca, revoked, **kw))
        return path

    @staticmethod
    def write_atomic(path, data):
        _write(path, data if isinstance(data, bytes) else data.encode())
        return path
