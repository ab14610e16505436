#!/usr/bin/env bash
# Regenerates the known-answer vectors in this directory with OpenSSL, independently of the
# crate's own code. The XML layout follows .NET's EncryptedXml.Encrypt(XmlElement, X509Certificate2)
# (dotnet/runtime System.Security.Cryptography.Xml: EncryptedXml.cs, EncryptedData.cs,
# EncryptedKey.cs, KeyInfoX509Data.cs) as CertificateXmlEncryptor (dotnet/aspnetcore
# src/DataProtection/DataProtection/src/XmlEncryption/CertificateXmlEncryptor.cs) stores it.
# Test-only keys: never use them for anything else.
set -euo pipefail
cd "$(dirname "$0")"
data=../data
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

master_b64='AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=='
# UTF8(XmlElement.OuterXml) of a new .NET key's <masterKey>: d1p1 is XmlTextWriter's generated prefix.
plaintext="<masterKey d1p1:requiresEncryption=\"true\" xmlns:d1p1=\"http://schemas.asp.net/2015/03/dataProtection\"><!-- Warning: the key below is in an unencrypted form. --><value>${master_b64}</value></masterKey>"
aes_key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
iv=a0a1a2a3a4a5a6a7a8a9aaabacadaeaf

len=${#plaintext}
pad=$((16 - len % 16))
# ISO 10126: pad-1 filler bytes (fixed here: 0xc0, 0xc1, ...) then the pad length.
filler=""
for ((i = 0; i < pad - 1; i++)); do filler+=$(printf '%02x' $((0xc0 + i))); done
padding="${filler}$(printf '%02x' "$pad")"
printf '%s' "$plaintext" > "$tmp/plain"
printf '%s' "$padding" | xxd -r -p >> "$tmp/plain"
openssl enc -aes-256-cbc -K "$aes_key" -iv "$iv" -nopad -in "$tmp/plain" -out "$tmp/ct"
{ printf '%s' "$iv" | xxd -r -p; cat "$tmp/ct"; } > "$tmp/cv"
cipher_value=$(base64 -w0 "$tmp/cv")

cert_b64() { openssl x509 -in "$1" -outform DER | base64 -w0; }

# A .NET-shaped key document: the layout of a key file written by ProtectKeysWithCertificate.
dotnet_key() { # $1 key transport URI, $2 wrapped key (base64), $3 cert PEM, $4 content cipher value
cat <<XML
<?xml version="1.0" encoding="utf-8"?>
<key id="5c1f8f9a-3d1e-4f0b-9a57-0c2a6a4b3e11" version="1">
  <creationDate>2024-05-01T10:00:00.0000000Z</creationDate>
  <activationDate>2024-05-01T10:00:00.0000000Z</activationDate>
  <expirationDate>2124-07-30T10:00:00.0000000Z</expirationDate>
  <descriptor deserializerType="Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60">
    <descriptor>
      <encryption algorithm="AES_256_CBC" />
      <validation algorithm="HMACSHA256" />
      <encryptedSecret decryptorType="Microsoft.AspNetCore.DataProtection.XmlEncryption.EncryptedXmlDecryptor, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60" xmlns="http://schemas.asp.net/2015/03/dataProtection">
        <EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element" xmlns="http://www.w3.org/2001/04/xmlenc#">
          <EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc" />
          <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
            <EncryptedKey xmlns="http://www.w3.org/2001/04/xmlenc#">
              <EncryptionMethod Algorithm="$1" />
              <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
                <X509Data>
                  <X509Certificate>$(cert_b64 "$3")</X509Certificate>
                </X509Data>
              </KeyInfo>
              <CipherData>
                <CipherValue>$2</CipherValue>
              </CipherData>
            </EncryptedKey>
          </KeyInfo>
          <CipherData>
            <CipherValue>$4</CipherValue>
          </CipherData>
        </EncryptedData>
      </encryptedSecret>
    </descriptor>
  </descriptor>
</key>
XML
}

printf '%s' "$aes_key" | xxd -r -p > "$tmp/aes"
openssl pkeyutl -encrypt -certin -inkey "$data/test-only-cert1.pem" -pkeyopt rsa_padding_mode:pkcs1 -in "$tmp/aes" -out "$tmp/w15"
openssl pkeyutl -encrypt -certin -inkey "$data/test-only-cert1.pem" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1 -in "$tmp/aes" -out "$tmp/woaep"
dotnet_key "http://www.w3.org/2001/04/xmlenc#rsa-1_5" "$(base64 -w0 "$tmp/w15")" "$data/test-only-cert1.pem" "$cipher_value" > dotnet-key-rsa-1_5.xml
dotnet_key "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" "$(base64 -w0 "$tmp/woaep")" "$data/test-only-cert1.pem" "$cipher_value" > dotnet-key-rsa-oaep.xml

cat > certificate_xml_encryption.json <<JSON
{
  "source": "OpenSSL (make-vectors.sh), laid out as dotnet/runtime EncryptedXml.Encrypt(XmlElement, X509Certificate2) and dotnet/aspnetcore CertificateXmlEncryptor write it",
  "known_answer": {
    "certificate": "test-only-cert1.pem",
    "private_key": "test-only-key1.pem",
    "master_key_base64": "$master_b64",
    "plaintext": $(printf '%s' "$plaintext" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))'),
    "aes_key_hex": "$aes_key",
    "iv_hex": "$iv",
    "padding_filler_hex": "$filler",
    "cipher_value_base64": "$cipher_value"
  },
  "dotnet_documents": [
    { "file": "dotnet-key-rsa-1_5.xml", "private_key": "test-only-key1.pem", "master_key_base64": "$master_b64" },
    { "file": "dotnet-key-rsa-oaep.xml", "private_key": "test-only-key1.pem", "master_key_base64": "$master_b64" }
  ]
}
JSON
