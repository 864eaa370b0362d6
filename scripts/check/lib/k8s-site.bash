# Sourced by scripts/check/k8s.sh and scripts/check/k8s_pods.sh. The prod overlay reads
# what only the operator knows from k8s/overlays/prod/site.env, which the repository does
# not hold; the checks build a copy of k8s/ with these test values. Needs $kustomize.

SITE_TEST_ENV='PUBLIC_HOST=shop.ecom.test
ECOM_CORS_ALLOWED_ORIGINS=https://shop.ecom.test
ECOM_SMTP_URL=smtp://smtp.mail.svc:1025
ECOM_MAIL_FROM=ecom <no-reply@shop.ecom.test>'

# site_copy WORK: a copy of k8s/ under WORK without any site.env; prints its path.
site_copy() {
  local copy="$1/k8s-site"
  rm -rf "$copy"
  cp -r k8s "$copy"
  rm -f "$copy/overlays/prod/site.env"
  echo "$copy"
}

# site_build OVERLAY WORK: `kustomize build` of the overlay with the test site.env.
site_build() {
  local copy
  copy=$(site_copy "$2")
  printf '%s\n' "$SITE_TEST_ENV" >"$copy/overlays/prod/site.env"
  "$kustomize" build "$copy/overlays/$1"
}
